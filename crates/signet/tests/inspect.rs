//! `signet inspect`: certificates, CSRs and CRLs made by the openssl CLI, and OCSP responses
//! from Signet's own responder, read back through the real binary, with `--json` parsed and
//! compared field by field with what openssl prints about the same files. `--ocsp` asks a
//! running `signet serve`'s responder before and after a revocation.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{Server, openssl, p, signet_in, text};

fn signet(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    signet_in(cwd, env, args, "")
}

fn signet_with_stdin(
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    signet_in(cwd, env, args, stdin)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// openssl ARGS, expected to succeed; its standard output.
fn openssl_ok(args: &[&str]) -> String {
    let o = openssl(args);
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    stdout(&o)
}

/// `signet inspect --json ARGS` in `dir`, expecting success; the parsed objects.
fn inspect_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend(args);
    let o = signet(dir, &[], &all);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// openssl's `AB:CD:...` form as lowercase hex.
fn hex_of(openssl_text: &str) -> String {
    openssl_text
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// openssl's ISO 8601 date (`2026-12-07 01:22:29Z`) as RFC 3339.
fn iso(openssl_text: &str) -> String {
    openssl_text
        .trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(' ', "T")
}

/// Text with every run of whitespace made one space (the text output aligns its columns).
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A CA certificate and key made by openssl with every extension inspect shows.
fn openssl_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("ca.key");
    let crt = dir.join("ca.crt");
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&crt),
        "-days",
        "30",
        "-subj",
        "/CN=Test CA/O=Acme, Inc.",
        "-addext",
        "subjectAltName=DNS:ca.test,IP:10.1.2.3,IP:::1,URI:spiffe://acme/ca,email:pki@acme.test",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-addext",
        "extendedKeyUsage=serverAuth,clientAuth,1.2.3.4.5",
        "-addext",
        "authorityInfoAccess=OCSP;URI:http://ocsp.acme.test/,caIssuers;URI:http://acme.test/ca.crt",
        "-addext",
        "crlDistributionPoints=URI:http://acme.test/ca.crl",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:1",
    ]);
    (crt, key)
}

#[test]
fn openssl_made_certificates_csrs_and_crls_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (crt, key) = openssl_ca(dir);

    // A certificate, PEM: every field agrees with openssl's reading of the same file.
    let v = inspect_json(dir, &[p(&crt)]);
    let objects = v["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    let c = &objects[0];
    assert_eq!(c["kind"], "certificate");
    assert_eq!(c["version"], 3);
    // openssl pads to whole octets; Signet strips leading zero octets: compare as numbers.
    assert_eq!(
        c["serial"].as_str().unwrap().trim_start_matches('0'),
        hex_of(&openssl_ok(&["x509", "-in", p(&crt), "-noout", "-serial"])).trim_start_matches('0')
    );
    assert_eq!(c["subject"], "O=Acme\\, Inc.,CN=Test CA");
    assert_eq!(c["issuer"], c["subject"]);
    assert_eq!(c["self_signed"], true);
    let start = openssl_ok(&[
        "x509",
        "-in",
        p(&crt),
        "-noout",
        "-startdate",
        "-dateopt",
        "iso_8601",
    ]);
    let end = openssl_ok(&[
        "x509",
        "-in",
        p(&crt),
        "-noout",
        "-enddate",
        "-dateopt",
        "iso_8601",
    ]);
    assert_eq!(c["not_before"].as_str().unwrap(), iso(&start));
    assert_eq!(c["not_after"].as_str().unwrap(), iso(&end));
    assert_eq!(c["public_key"]["algorithm"], "RSA");
    assert_eq!(c["public_key"]["bits"], 2048);
    assert_eq!(c["signature_algorithm"], "sha256WithRSAEncryption");
    assert_eq!(
        strings(&c["subject_alt_names"]),
        [
            "dns:ca.test",
            "ip:10.1.2.3",
            "ip:::1",
            "uri:spiffe://acme/ca",
            "email:pki@acme.test"
        ]
    );
    assert_eq!(
        strings(&c["key_usage"]),
        ["digitalSignature", "keyCertSign", "cRLSign"]
    );
    assert_eq!(
        strings(&c["extended_key_usage"]),
        ["serverAuth", "clientAuth", "1.2.3.4.5"]
    );
    assert_eq!(c["basic_constraints"]["ca"], true);
    assert_eq!(c["basic_constraints"]["path_len"], 1);
    assert_eq!(
        strings(&c["authority_info_access"]["ocsp"]),
        ["http://ocsp.acme.test/"]
    );
    assert_eq!(
        strings(&c["authority_info_access"]["ca_issuers"]),
        ["http://acme.test/ca.crt"]
    );
    assert_eq!(
        strings(&c["crl_distribution_points"]),
        ["http://acme.test/ca.crl"]
    );
    let ski = openssl_ok(&[
        "x509",
        "-in",
        p(&crt),
        "-noout",
        "-ext",
        "subjectKeyIdentifier",
    ]);
    assert_eq!(
        c["subject_key_id"].as_str().unwrap(),
        hex_of(ski.lines().nth(1).unwrap())
    );
    let fp = openssl_ok(&["x509", "-in", p(&crt), "-noout", "-fingerprint", "-sha256"]);
    assert_eq!(c["fingerprints"]["sha256"].as_str().unwrap(), hex_of(&fp));
    let fp1 = openssl_ok(&["x509", "-in", p(&crt), "-noout", "-fingerprint", "-sha1"]);
    assert_eq!(c["fingerprints"]["sha1"].as_str().unwrap(), hex_of(&fp1));
    assert!(c["problems"].as_array().unwrap().is_empty());
    let ku = c["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "keyUsage")
        .unwrap();
    assert_eq!(ku["critical"], true);
    assert_eq!(ku["oid"], "2.5.29.15");

    // The same certificate in DER, and on standard input, reads the same.
    let der = dir.join("ca.der");
    openssl_ok(&["x509", "-in", p(&crt), "-outform", "DER", "-out", p(&der)]);
    assert_eq!(inspect_json(dir, &[p(&der)])["objects"][0], *c);
    let o = signet_with_stdin(
        dir,
        &[],
        &["inspect", "--json", "-"],
        &std::fs::read_to_string(&crt).unwrap(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let from_stdin: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(from_stdin["objects"][0], *c);

    // The text form names the same things, one per line, times in RFC 3339.
    let o = signet(dir, &[], &["inspect", p(&crt)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = words(&stdout(&o));
    for line in [
        "Subject: O=Acme\\, Inc.,CN=Test CA",
        "Public key: RSA (2048 bits)",
        "Key usage: digitalSignature, keyCertSign, cRLSign (critical)",
        "Basic constraints: CA:TRUE, pathlen:1 (critical)",
        "OCSP: http://ocsp.acme.test/",
        "Self-signed: yes",
        &format!("Not after: {}", iso(&end)),
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }

    // A CSR from openssl req, PEM and DER, with requested extensions; its signature verifies.
    let csr = dir.join("req.csr");
    let csr_key = dir.join("req.key");
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        p(&csr_key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=api.internal",
        "-addext",
        "subjectAltName=DNS:api.internal,DNS:*.api.internal",
        "-addext",
        "extendedKeyUsage=clientAuth",
    ]);
    let v = inspect_json(dir, &[p(&csr)]);
    let r = &v["objects"][0];
    assert_eq!(r["kind"], "csr");
    assert_eq!(r["subject"], "CN=api.internal");
    assert_eq!(r["public_key"]["algorithm"], "EC");
    assert_eq!(r["public_key"]["curve"], "P-384");
    assert_eq!(r["public_key"]["bits"], 384);
    assert_eq!(r["signature_valid"], true);
    assert_eq!(
        strings(&r["subject_alt_names"]),
        ["dns:api.internal", "dns:*.api.internal"]
    );
    assert_eq!(strings(&r["extended_key_usage"]), ["clientAuth"]);
    let csr_der = dir.join("req.der");
    openssl_ok(&[
        "req",
        "-in",
        p(&csr),
        "-outform",
        "DER",
        "-out",
        p(&csr_der),
    ]);
    assert_eq!(inspect_json(dir, &[p(&csr_der)])["objects"][0], *r);

    // A CRL from `openssl ca -gencrl` with one revoked entry and its reason.
    std::fs::write(
        dir.join("index.txt"),
        "R\t301231235959Z\t240102030405Z,keyCompromise\t1234ABCD\tunknown\t/CN=revoked\n\
         R\t301231235959Z\t240103000000Z,superseded\t0FEE\tunknown\t/CN=old\n",
    )
    .unwrap();
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
    let cnf = dir.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\n\
             default_crl_days = 7\ncrl_extensions = e\n[e]\nauthorityKeyIdentifier = keyid:always\n",
            p(&dir.join("index.txt")),
            p(&dir.join("crlnumber"))
        ),
    )
    .unwrap();
    let crl = dir.join("ca.crl");
    openssl_ok(&[
        "ca",
        "-gencrl",
        "-config",
        p(&cnf),
        "-keyfile",
        p(&key),
        "-cert",
        p(&crt),
        "-out",
        p(&crl),
    ]);
    let v = inspect_json(dir, &[p(&crl)]);
    let l = &v["objects"][0];
    assert_eq!(l["kind"], "crl");
    assert_eq!(l["version"], 2);
    assert_eq!(l["issuer"], "O=Acme\\, Inc.,CN=Test CA");
    assert_eq!(l["crl_number"], "4096");
    assert_eq!(l["authority_key_id"], c["subject_key_id"]);
    let next = openssl_ok(&[
        "crl",
        "-in",
        p(&crl),
        "-noout",
        "-nextupdate",
        "-dateopt",
        "iso_8601",
    ]);
    assert_eq!(l["next_update"].as_str().unwrap(), iso(&next));
    assert_eq!(
        l["revoked"],
        serde_json::json!([
            {"serial": "0fee", "revoked_at": "2024-01-03T00:00:00Z", "reason": "superseded"},
            {"serial": "1234abcd", "revoked_at": "2024-01-02T03:04:05Z", "reason": "keyCompromise"},
        ])
    );
    let o = signet(dir, &[], &["inspect", p(&crl)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&stdout(&o)).contains("1234abcd 2024-01-02T03:04:05Z keyCompromise"),
        "{}",
        text(&o)
    );

    // Several blocks in one file: each is described, a private key only named.
    let bundle = dir.join("bundle.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read_to_string(&crt).unwrap(),
            std::fs::read_to_string(&csr_key).unwrap(),
            std::fs::read_to_string(&crl).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let v = inspect_json(dir, &[p(&bundle)]);
    let kinds: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["certificate", "other", "crl"]);
    assert_eq!(v["objects"][1]["label"], "PRIVATE KEY");
    let o = signet(dir, &[], &["inspect", p(&bundle)]);
    let key_pem = std::fs::read_to_string(&csr_key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!stdout(&o).contains(key_body), "the key was printed");
    assert!(stdout(&o).contains("PEM block PRIVATE KEY (not shown)"));

    // Unreadable input: a clear refusal (exit 2), nothing on standard output.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"\x30\x82\x01\x00garbage that is not DER").unwrap();
    let truncated = dir.join("truncated.pem");
    let pem = std::fs::read_to_string(&crt).unwrap();
    std::fs::write(&truncated, &pem[..pem.len() / 2]).unwrap();
    for (file, says) in [
        (
            junk.as_path(),
            "not PEM, and not a DER certificate, CSR, CRL or OCSP response",
        ),
        (truncated.as_path(), "has no END line"),
        (dir.join("absent.pem").as_path(), "absent.pem"),
    ] {
        let o = signet(dir, &[], &["inspect", p(file)]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(stderr(&o).contains(says), "{says:?}: {}", text(&o));
        assert!(stdout(&o).is_empty(), "{}", text(&o));
    }
    // --ocsp without an issuer says where to put it, and asks no one.
    let o = signet(dir, &[], &["inspect", "--ocsp", p(&csr)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("--ocsp needs a certificate"),
        "{}",
        text(&o)
    );
}

/// GET a path from the responder over plain HTTP/1.0; the body.
fn http_get(base: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200"));
    resp[split + 4..].to_vec()
}

#[test]
fn ocsp_status_and_responses_from_the_real_responder() {
    let tmp = tempfile::tempdir().unwrap();
    // The responder's address is chosen first and written into [urls], as an operator
    // does before issuing, so the certificates' AIA names this responder.
    let data = tmp.path().join("data");
    let o = common::base_command()
        .args(["init", "--dir", p(&data)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let port = common::free_port();
    let responder = format!("http://127.0.0.1:{port}");
    let toml = data.join("signet.toml");
    let config = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("http://127.0.0.1:8080/", &format!("{responder}/"));
    std::fs::write(&toml, config).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_blocking(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--responder-listen", &listen],
    );
    let base_url = server.base();
    let url = base_url.as_str();
    let root = data.join("root_ca.crt");
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();

    let o = signet(
        &client,
        &[],
        &[
            "certificate",
            "svc.internal",
            "--ca-url",
            url,
            "--dir",
            p(&data),
            "--ca-file",
            p(&root),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let crt = client.join("svc.internal.crt");
    let v = inspect_json(&client, &[p(&crt)]);
    let leaf = &v["objects"][0];
    let serial = leaf["serial"].as_str().unwrap().to_string();
    assert_eq!(
        v["objects"].as_array().unwrap().len(),
        2,
        "leaf and issuing CA"
    );
    assert_eq!(strings(&leaf["extended_key_usage"]), ["serverAuth"]);
    assert!(
        leaf["authority_info_access"]["ocsp"][0]
            .as_str()
            .unwrap()
            .starts_with(&responder),
        "{leaf}"
    );
    assert_eq!(leaf["authority_key_id"], v["objects"][1]["subject_key_id"]);

    // --ocsp: good, signed by the delegated responder; the issuer comes from the file.
    let v = inspect_json(&client, &["--ocsp", p(&crt)]);
    assert_eq!(v["ocsp"]["status"], "good", "{v}");
    assert_eq!(v["ocsp"]["signer"], "delegated");
    assert!(v["ocsp"]["url"].as_str().unwrap().starts_with(&responder));
    let o = signet(&client, &[], &["inspect", "--ocsp", p(&crt)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(words(&stdout(&o)).contains("Status: good"), "{}", text(&o));

    // Revoked: the status, time and reason, and exit 5.
    let o = signet(
        &client,
        &[],
        &[
            "revoke",
            &serial,
            "--reason",
            "keyCompromise",
            "--ca-url",
            url,
            "--dir",
            p(&data),
            "--ca-file",
            p(&root),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = signet(&client, &[], &["inspect", "--json", "--ocsp", p(&crt)]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(stderr(&o).contains("revoked"), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ocsp"]["status"], "revoked");
    assert_eq!(v["ocsp"]["revocation_reason"], "keyCompromise");
    assert!(v["ocsp"]["revoked_at"].as_str().unwrap().ends_with('Z'));

    // The raw response, fetched by openssl from the responder, read by inspect.
    let leaf_pem = client.join("leaf.pem");
    let issuer_pem = client.join("issuer.pem");
    openssl_ok(&["x509", "-in", p(&crt), "-out", p(&leaf_pem)]);
    std::fs::copy(data.join("issuing_ca.crt"), &issuer_pem).unwrap();
    let resp = client.join("resp.der");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        p(&issuer_pem),
        "-cert",
        p(&leaf_pem),
        "-url",
        &format!("{}/ocsp", responder),
        "-noverify",
        "-respout",
        p(&resp),
    ]);
    let v = inspect_json(&client, &[p(&resp)]);
    let r = &v["objects"][0];
    assert_eq!(r["kind"], "ocsp_response");
    assert_eq!(r["response_status"], "successful");
    assert_eq!(r["responses"][0]["serial"].as_str().unwrap(), serial);
    assert_eq!(r["responses"][0]["status"], "revoked");
    assert_eq!(r["responses"][0]["revocation_reason"], "keyCompromise");
    assert_eq!(r["responses"][0]["hash_algorithm"], "SHA-1");
    assert!(r["nonce"].is_string(), "openssl sends a nonce: {r}");
    assert!(r["responder_id"].as_str().unwrap().starts_with("key:"));
    assert_eq!(
        strings(&r["certificates"][0]["extended_key_usage"]),
        ["OCSPSigning"]
    );
    let o = signet(&client, &[], &["inspect", p(&resp)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("revoked at"), "{}", text(&o));

    // The issuing CA's CRL from the responder lists it with its reason.
    let crl = client.join("issuing.crl");
    std::fs::write(&crl, http_get(&responder, "/crl/issuing.crl")).unwrap();
    let v = inspect_json(&client, &[p(&crl)]);
    let l = &v["objects"][0];
    assert_eq!(l["kind"], "crl");
    let entry = l["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["serial"] == serial.as_str())
        .unwrap_or_else(|| panic!("{serial} not on the CRL: {l}"));
    assert_eq!(entry["reason"], "keyCompromise");
}
