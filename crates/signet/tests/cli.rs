//! End-to-end tests of the `signet` binary as an operator uses it: `init`, `issue --local`,
//! `migrate`, against SQLite and a real PostgreSQL, with CSRs from `openssl req` and
//! certificates checked by `openssl verify`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use signet_store::Store;
use signet_testkit::TestDb;

mod common;
use common::{p, sqlite3, text};

fn signet(envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(args)
        .env_remove("SIGNET_CA_PASSPHRASE")
        .env_remove("SIGNET_DATABASE_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

fn csr(dir: &Path, tag: &str, key: &[&str], subj: &str, san: Option<&str>) -> PathBuf {
    let out = dir.join(format!("{tag}.csr"));
    let keyfile = dir.join(format!("{tag}.key"));
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(key);
    args.extend_from_slice(&["-keyout", p(&keyfile), "-out", p(&out), "-subj", subj]);
    let ext = san.map(|s| format!("subjectAltName={s}"));
    if let Some(ext) = &ext {
        args.extend_from_slice(&["-addext", ext]);
    }
    let o = openssl(&args);
    assert!(o.status.success(), "{}", text(&o));
    out
}

const EC: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
const RSA: &[&str] = &["-newkey", "rsa:2048"];

/// `signet init` into a fresh directory, with the database at `db_url` (None: SQLite default).
fn init(
    db_url: Option<&str>,
    extra_env: &[(&str, &str)],
) -> (tempfile::TempDir, PathBuf, Vec<(String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut env: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(url) = db_url {
        env.push(("SIGNET_DATABASE_URL".into(), url.into()));
    }
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = signet(
        &env_ref,
        &["init", "--dir", p(&dir), "--name", "Acme Internal CA"],
    );
    assert!(out.status.success(), "init: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("root fingerprint:    sha256:"),
        "{}",
        text(&out)
    );
    (tmp, dir, env)
}

fn issue(dir: &Path, env: &[(String, String)], csr: &Path, extra: &[&str]) -> Output {
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut args = vec!["issue", "--local", "--dir", p(dir), "--csr", p(csr)];
    args.extend_from_slice(extra);
    signet(&env_ref, &args)
}

fn verify(dir: &Path, leaf: &Path, purpose: &str) -> Output {
    openssl(&[
        "verify",
        "-CAfile",
        p(&dir.join("root_ca.crt")),
        "-untrusted",
        p(&dir.join("issuing_ca.crt")),
        "-purpose",
        purpose,
        p(leaf),
    ])
}

async fn store_for(dir: &Path, db: Option<&TestDb>) -> Store {
    let url = match db {
        Some(db) => db.url().to_string(),
        None => format!("sqlite://{}", dir.join("signet.db").display()),
    };
    Store::connect(&url).await.unwrap()
}

fn serial_of(pem_file: &Path) -> String {
    let o = openssl(&["x509", "-in", p(pem_file), "-noout", "-serial"]);
    let s = String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    // openssl prints whole octets; the store keeps the minimal form, which for our serials
    // (top bit clear, second bit set) is the same.
    s
}

/// The whole operator path on one backend.
async fn init_issue_verify_and_record(db: Option<&TestDb>) {
    let (tmp, dir, env) = init(db.map(|d| d.url()), &[]);
    let backend = db.map_or("sqlite", |d| d.name());

    // Files and modes.
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for key in ["root_ca.key", "issuing_ca.key"] {
        let meta = std::fs::metadata(dir.join(key)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{key}");
        assert!(
            std::fs::read_to_string(dir.join(key))
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }
    let toml = std::fs::read_to_string(dir.join("signet.toml")).unwrap();
    assert!(
        toml.contains("# ") && toml.contains("max_ttl = \"7d\""),
        "commented config with defaults"
    );

    // The CA hierarchy itself passes openssl: root pathlen 1, issuing pathlen 0.
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&dir.join("root_ca.crt")),
        p(&dir.join("issuing_ca.crt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = openssl(&[
        "x509",
        "-in",
        p(&dir.join("issuing_ca.crt")),
        "-noout",
        "-text",
    ]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("CA:TRUE, pathlen:0") && t.contains("Acme Internal CA Issuing CA"),
        "{t}"
    );
    let o = openssl(&[
        "x509",
        "-in",
        p(&dir.join("root_ca.crt")),
        "-noout",
        "-text",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("CA:TRUE, pathlen:1"));

    for (tag, key, profile, purpose) in [
        ("rsa", RSA, "server", "sslserver"),
        ("ec", EC, "peer", "sslclient"),
    ] {
        let req = csr(
            tmp.path(),
            tag,
            key,
            "/CN=api.internal",
            Some("DNS:api.internal,IP:127.0.0.1"),
        );
        let leaf = tmp.path().join(format!("{tag}.crt"));
        let out = issue(
            &dir,
            &env,
            &req,
            &["--profile", profile, "--ttl", "2h", "--out", p(&leaf)],
        );
        assert!(out.status.success(), "{backend} {tag}: {}", text(&out));
        let v = verify(&dir, &leaf, purpose);
        assert!(v.status.success(), "{backend} {tag}: {}", text(&v));

        let store = store_for(&dir, db).await;
        let serial = serial_of(&leaf);
        let rec = store
            .get_certificate(&sn(&serial))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{backend}: {serial} not stored"));
        assert_eq!(rec.profile, profile);
        assert_eq!(rec.sans, vec!["dns:api.internal", "ip:127.0.0.1"]);
        assert!(rec.requester.starts_with("local:"), "{}", rec.requester);
        assert_eq!(
            (rec.not_after - rec.not_before).whole_seconds(),
            2 * 3600 + 60
        );
        assert!(rec.revoked_at.is_none());
        let pem = std::fs::read_to_string(&leaf).unwrap();
        let first = pem
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .to_string()
            + "-----END CERTIFICATE-----\n";
        let (_, der) = pem_rfc7468::decode_vec(first.as_bytes()).unwrap();
        assert_eq!(rec.der, der, "the stored DER is the certificate handed out");
        store.close().await;
    }

    // Without --out, the chain goes to stdout: leaf then issuing CA.
    let req = csr(tmp.path(), "stdout", EC, "/CN=stdout.internal", None);
    let out = issue(&dir, &env, &req, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );

    let store = store_for(&dir, db).await;
    assert_eq!(store.count_certificates().await.unwrap(), 3, "{backend}");
    let audit = store.list_audit(10).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "issue" && a.outcome == "ok")
            .count(),
        3,
        "{backend}: {audit:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_init_issue_verify_and_record() {
    init_issue_verify_and_record(None).await;
}

#[tokio::test]
async fn postgres_init_issue_verify_and_record() {
    let db = TestDb::postgres().await;
    init_issue_verify_and_record(Some(&db)).await;
}

/// Bad requests are refused with a reason and exit code 2; no certificate is stored; each
/// refusal is audited.
async fn refusals_store_nothing(db: Option<&TestDb>) {
    let (tmp, dir, env) = init(db.map(|d| d.url()), &[]);
    let t = tmp.path();
    let good = csr(t, "good", EC, "/CN=a.internal", None);
    let good_pem = std::fs::read_to_string(&good).unwrap();

    let tampered = t.join("tampered.csr");
    let o = openssl(&[
        "req",
        "-in",
        p(&good),
        "-outform",
        "DER",
        "-out",
        p(&t.join("good.der")),
    ]);
    assert!(o.status.success());
    let mut der = std::fs::read(t.join("good.der")).unwrap();
    let pos = der.windows(10).position(|w| w == b"a.internal").unwrap();
    der[pos] = b'e';
    std::fs::write(&tampered, &der).unwrap();

    let trailing = t.join("trailing.csr");
    std::fs::write(&trailing, format!("{good_pem}trailing garbage\n")).unwrap();

    let cases: Vec<(&str, PathBuf, Vec<&str>, &str)> = vec![
        ("bad signature", tampered, vec![], "signature"),
        (
            "rsa 1024",
            csr(
                t,
                "rsa1024",
                &["-newkey", "rsa:1024"],
                "/CN=a.internal",
                None,
            ),
            vec![],
            "RSA 1024",
        ),
        (
            "denied name",
            csr(
                t,
                "denied",
                EC,
                "/CN=a.internal",
                Some("DNS:www.example.com"),
            ),
            vec![],
            "dns:www.example.com",
        ),
        ("trailing garbage", trailing, vec![], "malformed CSR"),
        (
            "CA request",
            csr_with_ext(t, "ca", "basicConstraints=critical,CA:TRUE"),
            vec![],
            "CA certificate",
        ),
        (
            "ttl too long",
            good.clone(),
            vec!["--ttl", "8d"],
            "exceeds the maximum",
        ),
        (
            "unknown profile",
            good.clone(),
            vec!["--profile", "ca"],
            "unknown profile",
        ),
        (
            "client needs names",
            csr(t, "ipclient", EC, "/", Some("IP:10.0.0.1")),
            vec!["--profile", "client"],
            "requires",
        ),
    ];
    for (what, file, extra, reason) in &cases {
        let out = issue(&dir, &env, file, extra);
        assert_eq!(out.status.code(), Some(3), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refused") && err.contains(reason),
            "{what}: expected {reason:?} in {err}"
        );
        assert!(out.stdout.is_empty(), "{what}: nothing printed");
    }
    let store = store_for(&dir, db).await;
    assert_eq!(
        store.count_certificates().await.unwrap(),
        0,
        "nothing stored"
    );
    let audit = store.list_audit(50).await.unwrap();
    assert_eq!(
        audit.iter().filter(|a| a.outcome == "refused").count(),
        cases.len(),
        "{audit:?}"
    );
    store.close().await;
}

fn csr_with_ext(dir: &Path, tag: &str, ext: &str) -> PathBuf {
    let out = dir.join(format!("{tag}.csr"));
    let o = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        p(&dir.join(format!("{tag}.key"))),
        "-out",
        p(&out),
        "-subj",
        "/CN=a.internal",
        "-addext",
        ext,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

#[tokio::test]
async fn sqlite_refusals_store_nothing() {
    refusals_store_nothing(None).await;
}

#[tokio::test]
async fn postgres_refusals_store_nothing() {
    let db = TestDb::postgres().await;
    refusals_store_nothing(Some(&db)).await;
}

#[tokio::test]
async fn encrypted_ca_keys_need_the_passphrase_and_openssl_reads_them() {
    let pass = [("SIGNET_CA_PASSPHRASE", "s3cret passphrase")];
    let (tmp, dir, env) = init(None, &pass);
    let key = dir.join("issuing_ca.key");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    let o = openssl(&[
        "pkey",
        "-in",
        p(&key),
        "-passin",
        "pass:s3cret passphrase",
        "-noout",
    ]);
    assert!(
        o.status.success(),
        "openssl reads our encrypted PKCS#8: {}",
        text(&o)
    );

    let req = csr(tmp.path(), "x", EC, "/CN=x.internal", None);
    let out = issue(&dir, &[], &req, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGNET_CA_PASSPHRASE"));
    let wrong = vec![("SIGNET_CA_PASSPHRASE".to_string(), "wrong".to_string())];
    let out = issue(&dir, &wrong, &req, &[]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        text(&out)
    );
    let out = issue(&dir, &env, &req, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
        "the passphrase never appears in output"
    );
}

#[tokio::test]
async fn a_group_readable_key_is_refused_and_init_never_overwrites() {
    let (tmp, dir, env) = init(None, &[]);
    std::fs::set_permissions(
        dir.join("issuing_ca.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let req = csr(tmp.path(), "x", EC, "/CN=x.internal", None);
    let out = issue(&dir, &env, &req, &[]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out)
    );

    let before = std::fs::read(dir.join("issuing_ca.key")).unwrap();
    let out = signet(&[], &["init", "--dir", p(&dir), "--name", "Other"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(dir.join("issuing_ca.key")).unwrap(), before);
}

#[tokio::test]
async fn an_existing_issuing_ca_is_adopted_with_import() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let f = |n: &str| t.join(n);
    std::fs::write(f("int.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-keyout",
            p(&f("root.key")),
            "-out",
            p(&f("root.pem")),
            "-subj",
            "/O=Legacy/CN=Legacy Root",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        vec![
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            p(&f("int.key")),
            "-out",
            p(&f("int.csr")),
            "-subj",
            "/O=Legacy/CN=Legacy Issuing",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            p(&f("int.csr")),
            "-CA",
            p(&f("root.pem")),
            "-CAkey",
            p(&f("root.key")),
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            p(&f("int.ext")),
            "-out",
            p(&f("int.pem")),
        ],
        // Teams often keep the CA key encrypted; openssl's default is PBES2 with PBKDF2 and AES-256-CBC.
        vec![
            "pkcs8",
            "-topk8",
            "-in",
            p(&f("int.key")),
            "-out",
            p(&f("int.enc.key")),
            "-passout",
            "pass:legacy",
        ],
    ] {
        let o = openssl(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(f("int.pem")).unwrap(),
        std::fs::read_to_string(f("root.pem")).unwrap()
    );
    std::fs::write(f("chain.pem"), chain).unwrap();

    let dir = t.join("data");
    let env = [("SIGNET_CA_PASSPHRASE", "legacy")];
    let out = signet(
        &env,
        &[
            "init",
            "--dir",
            p(&dir),
            "--name",
            "Legacy",
            "--import-cert",
            p(&f("chain.pem")),
            "--import-key",
            p(&f("int.enc.key")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !dir.join("root_ca.key").exists(),
        "no root key when adopting an issuing CA"
    );

    let req = csr(t, "leaf", RSA, "/CN=legacy.internal", None);
    let leaf = t.join("leaf.pem");
    let env = vec![("SIGNET_CA_PASSPHRASE".to_string(), "legacy".to_string())];
    let out = issue(&dir, &env, &req, &["--out", p(&leaf)]);
    assert!(out.status.success(), "{}", text(&out));
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&f("root.pem")),
        "-untrusted",
        p(&f("int.pem")),
        "-purpose",
        "sslserver",
        p(&leaf),
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // No root key, so no root CRL from init, and init says so. Whoever holds the root key
    // can still sign one with `ca root-crl --root-key` (here an openssl-made P-384 root).
    assert!(!dir.join("root_ca.crl").exists());
    let again = t.join("data-again");
    let out = signet(
        &[("SIGNET_CA_PASSPHRASE", "legacy")],
        &[
            "init",
            "--dir",
            p(&again),
            "--import-cert",
            p(&f("chain.pem")),
            "--import-key",
            p(&f("int.enc.key")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No root CRL was written"),
        "{}",
        text(&out)
    );
    let crl = t.join("legacy-root.crl");
    let out = signet(
        &[],
        &[
            "ca",
            "root-crl",
            "--dir",
            p(&dir),
            "--root-key",
            p(&f("root.key")),
            "--out",
            p(&crl),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&f("root.pem")),
        "-verify",
        "-noout",
        "-crlnumber",
    ]);
    let all = text(&o);
    assert!(o.status.success() && all.contains("verify OK"), "{all}");
    assert!(all.contains("crlNumber=0x01"), "{all}");
}

/// `openssl crl -verify` of `crl` against `ca` (PEM or DER by `der`): its whole output, which
/// must say "verify OK".
fn crl_verified(crl: &Path, ca: &Path, der: bool) -> String {
    let mut args = vec!["crl", "-in", p(crl), "-CAfile", p(ca), "-verify", "-noout"];
    if der {
        args.extend(["-inform", "DER"]);
    }
    args.extend(["-crlnumber", "-issuer", "-nextupdate", "-text"]);
    let o = openssl(&args);
    let all = text(&o);
    assert!(o.status.success() && all.contains("verify OK"), "{all}");
    all
}

/// `init` signs and stores the root's first CRL and writes root_ca.crl; `ca root-crl` signs
/// the next ones with growing numbers, stores them, writes PEM or DER; bad validity, a
/// missing key and a missing passphrase are refused before anything is stored.
#[tokio::test]
async fn init_and_ca_root_crl_publish_the_roots_crl() {
    let (tmp, dir, _env) = init(None, &[]);
    let t = tmp.path();
    let root_cert = dir.join("root_ca.crt");
    let first = dir.join("root_ca.crl");
    assert!(
        std::fs::read_to_string(&first)
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    let out = crl_verified(&first, &root_cert, false);
    assert!(out.contains("crlNumber=0x01"), "{out}");
    assert!(out.contains("CN = Acme Internal CA Root CA"), "{out}");
    assert!(out.contains("No Revoked Certificates"), "{out}");
    // Signed by the root, not the issuing CA.
    let o = openssl(&[
        "crl",
        "-in",
        p(&first),
        "-CAfile",
        p(&dir.join("issuing_ca.crt")),
        "-verify",
        "-noout",
    ]);
    assert!(!o.status.success(), "{}", text(&o));

    // The stored CRL is the same one, under the root's key id.
    let root = signet_ca::IssuingCa::root_for_crls(
        &std::fs::read_to_string(&root_cert).unwrap(),
        signet_ca::read_private_key_file(&dir.join("root_ca.key"), None).unwrap(),
    )
    .unwrap();
    let key_id = hex::encode(root.key_id());
    let store = store_for(&dir, None).await;
    let stored = store.latest_crl(&key_id).await.unwrap().unwrap();
    assert_eq!(stored.number, 1);
    let first_der = std::process::Command::new("openssl")
        .args(["crl", "-in", p(&first), "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(stored.der, first_der);
    let days = (stored.next_update - stored.this_update).whole_days();
    assert_eq!(days, 90);

    // Two runs: numbers 2 and 3; PEM for .pem, DER otherwise.
    let root_crl = |extra: &[&str]| {
        let mut args = vec!["ca", "root-crl", "--dir", p(&dir)];
        args.extend_from_slice(extra);
        signet(&[], &args)
    };
    let pem_out = t.join("root.pem");
    let o = root_crl(&["--out", p(&pem_out)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("root CRL number 2"),
        "{}",
        text(&o)
    );
    assert!(crl_verified(&pem_out, &root_cert, false).contains("crlNumber=0x02"));
    let der_out = t.join("root.crl");
    let o = root_crl(&["--out", p(&der_out), "--validity", "30d"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(crl_verified(&der_out, &root_cert, true).contains("crlNumber=0x03"));
    let stored = store.latest_crl(&key_id).await.unwrap().unwrap();
    assert_eq!(stored.number, 3);
    assert_eq!(stored.der, std::fs::read(&der_out).unwrap());
    assert_eq!((stored.next_update - stored.this_update).whole_days(), 30);

    // Refusals store nothing.
    for bad in ["400d", "2years", "10m", "soon"] {
        let o = root_crl(&["--validity", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("--validity"), "{}", text(&o));
    }
    let o = root_crl(&["--validity", "400d"]);
    assert!(text(&o).contains("366 days"), "{}", text(&o));
    let offline = t.join("offline-root.key");
    std::fs::rename(dir.join("root_ca.key"), &offline).unwrap();
    let o = root_crl(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("root CA key") && err.contains("does not exist") && err.contains("--root-key"),
        "{err}"
    );
    // The wrong key (the issuing CA's) is refused too.
    let o = root_crl(&["--root-key", p(&dir.join("issuing_ca.key"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not match the root"), "{}", text(&o));
    assert_eq!(store.latest_crl(&key_id).await.unwrap().unwrap().number, 3);
    // The key brought back from elsewhere.
    let o = root_crl(&["--root-key", p(&offline)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(store.latest_crl(&key_id).await.unwrap().unwrap().number, 4);
    store.close().await;

    // An encrypted root key needs SIGNET_CA_PASSPHRASE, as init's keys do.
    let (_tmp2, enc_dir, _) = init(None, &[("SIGNET_CA_PASSPHRASE", "s3cret")]);
    assert!(enc_dir.join("root_ca.crl").exists());
    let o = signet(&[], &["ca", "root-crl", "--dir", p(&enc_dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("SIGNET_CA_PASSPHRASE"), "{}", text(&o));
    let o = signet(
        &[("SIGNET_CA_PASSPHRASE", "s3cret")],
        &["ca", "root-crl", "--dir", p(&enc_dir)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("root CRL number 2"));
}

#[tokio::test]
async fn migrate_applies_on_both_backends_and_is_idempotent() {
    for db in TestDb::all().await {
        for _ in 0..2 {
            let out = signet(&[], &["migrate", "--database-url", db.url()]);
            assert!(out.status.success(), "{}: {}", db.name(), text(&out));
        }
        let store = Store::connect(db.url()).await.unwrap();
        assert_eq!(
            store.count_certificates().await.unwrap(),
            0,
            "{}",
            db.name()
        );
        store.close().await;
    }
}

/// `ca root-crl --revoke` records the issuing CA under the root, revokes it and lists it on
/// the root's CRL, which openssl then uses to refuse the issuing CA; a second run keeps the
/// first revocation; `signet serve` refuses to start with the revoked issuing CA. What is
/// not the root's CA certificate is refused before anything is stored.
async fn the_root_revokes_its_issuing_ca(db: Option<&TestDb>) {
    let name = db.map_or("sqlite", |d| d.name());
    let (tmp, dir, env) = init(db.map(|d| d.url()), &[]);
    let t = tmp.path();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root_cert = dir.join("root_ca.crt");
    let issuing = dir.join("issuing_ca.crt");
    let root_crl = |extra: &[&str]| {
        let mut args = vec!["ca", "root-crl", "--dir", p(&dir)];
        args.extend_from_slice(extra);
        signet(&env_ref, &args)
    };
    let openssl_verify = |crl: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&root_cert),
            "-CRLfile",
            p(crl),
            p(&issuing),
        ])
    };
    // Before: the first root CRL lists nothing and the issuing CA verifies with CRL checks.
    let o = openssl_verify(&dir.join("root_ca.crl"));
    assert!(o.status.success(), "{name}: {}", text(&o));

    // Refused before anything is stored: the root itself, a leaf, junk, --reason alone.
    let (leaf_csr, leaf) = (
        csr(
            t,
            "leaf",
            EC,
            "/CN=leaf.internal",
            Some("DNS:leaf.internal"),
        ),
        t.join("leaf.pem"),
    );
    let o = issue(&dir, &env, &leaf_csr, &["--out", p(&leaf)]);
    assert!(o.status.success(), "{name}: {}", text(&o));
    let junk = t.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for (file, why) in [
        (&root_cert, "own certificate"),
        (&leaf, "its issuer is"),
        (&junk, "no certificate"),
    ] {
        let o = root_crl(&["--revoke", p(file)]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(why), "{name}: {why}: {}", text(&o));
    }
    let o = root_crl(&["--reason", "keyCompromise"]);
    assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
    let store = store_for(&dir, db).await;
    let issuing_serial = serial_of(&issuing);
    assert!(
        store
            .get_certificate(&sn(&issuing_serial))
            .await
            .unwrap()
            .is_none(),
        "{name}"
    );

    // Revoke it: recorded under the root, revoked, on the CRL; openssl refuses it.
    let crl = t.join("root.pem");
    let o = root_crl(&[
        "--revoke",
        p(&issuing),
        "--reason",
        "keyCompromise",
        "--out",
        p(&crl),
    ]);
    assert!(o.status.success(), "{name}: {}", text(&o));
    assert!(
        text(&o).contains("Revoked") && text(&o).contains("1 revoked"),
        "{name}: {}",
        text(&o)
    );
    let listed = crl_verified(&crl, &root_cert, false);
    assert!(
        listed.contains(&format!(
            "Serial Number: {}",
            issuing_serial.to_ascii_uppercase()
        )) && listed.contains("Key Compromise"),
        "{name}: {listed}"
    );
    let o = openssl_verify(&crl);
    assert!(!o.status.success(), "{name}: {}", text(&o));
    assert!(
        text(&o).contains("certificate revoked"),
        "{name}: {}",
        text(&o)
    );
    let rec = store
        .get_certificate(&sn(&issuing_serial))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.profile, "ca", "{name}");
    assert_eq!(
        rec.revocation_reason,
        Some(signet_ca::RevocationReason::KeyCompromise),
        "{name}"
    );
    assert_eq!(
        rec.der,
        std::fs::read(dir.join("issuing_ca.crt"))
            .map(|pem| {
                let b64: String = String::from_utf8(pem)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect();
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            })
            .unwrap(),
        "{name}"
    );

    // Again: the first revocation stands, and the next CRL still lists it.
    let o = root_crl(&[
        "--revoke",
        p(&issuing),
        "--reason",
        "superseded",
        "--out",
        p(&crl),
    ]);
    assert!(o.status.success(), "{name}: {}", text(&o));
    assert!(text(&o).contains("already revoked"), "{name}: {}", text(&o));
    let listed = crl_verified(&crl, &root_cert, false);
    assert!(
        listed.contains("Key Compromise") && listed.contains("crlNumber=0x03"),
        "{name}: {listed}"
    );
    store.close().await;

    // The server will not issue under a revoked CA.
    let o = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_signet"),
            "serve",
            "--init",
            "--dir",
            p(&dir),
            "--listen",
            "127.0.0.1:0",
            "--responder-listen",
            "127.0.0.1:0",
        ])
        .envs(env_ref.iter().copied())
        .env_remove("SIGNET_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
    assert!(
        text(&o).contains("was revoked by the root"),
        "{name}: {}",
        text(&o)
    );
}

#[tokio::test]
async fn sqlite_the_root_revokes_its_issuing_ca() {
    the_root_revokes_its_issuing_ca(None).await;
}

#[tokio::test]
async fn postgres_the_root_revokes_its_issuing_ca() {
    let db = TestDb::postgres().await;
    the_root_revokes_its_issuing_ca(Some(&db)).await;
}

/// `ca new-issuing` replaces the issuing CA with one the root signs: recorded under the root
/// first, the old pair kept beside it; new certificates chain through the new CA, old ones
/// still verify through the kept one, and the root can then revoke the old CA. Without the
/// right root key nothing changes.
#[tokio::test]
async fn a_new_issuing_ca_replaces_the_old_one() {
    let (tmp, dir, env) = init(None, &[]);
    let t = tmp.path();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root_cert = dir.join("root_ca.crt");
    let issuing = dir.join("issuing_ca.crt");
    let old_pem = std::fs::read_to_string(&issuing).unwrap();
    let old_serial = serial_of(&issuing);
    let old_leaf = t.join("old-leaf.pem");
    let req = csr(t, "old", EC, "/CN=old.internal", Some("DNS:old.internal"));
    let o = issue(&dir, &env, &req, &["--out", p(&old_leaf)]);
    assert!(o.status.success(), "{}", text(&o));

    // The wrong key changes nothing.
    let o = signet(
        &env_ref,
        &[
            "ca",
            "new-issuing",
            "--dir",
            p(&dir),
            "--root-key",
            p(&dir.join("issuing_ca.key")),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not match the root"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&issuing).unwrap(), old_pem);

    let o = signet(
        &env_ref,
        &["ca", "new-issuing", "--dir", p(&dir), "--validity", "400d"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Restart `signet serve`"), "{}", text(&o));
    let kept_cert = dir.join(format!("issuing_ca.{old_serial}.crt"));
    let kept_key = dir.join(format!("issuing_ca.{old_serial}.key"));
    assert_eq!(std::fs::read_to_string(&kept_cert).unwrap(), old_pem);
    let mode = std::fs::metadata(&kept_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mode = std::fs::metadata(dir.join("issuing_ca.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let new_serial = serial_of(&issuing);
    assert_ne!(new_serial, old_serial);

    // openssl: the new CA chains to the root, as a CA, for 400 days.
    let o = openssl(&["verify", "-CAfile", p(&root_cert), p(&issuing)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = openssl(&[
        "x509",
        "-in",
        p(&issuing),
        "-noout",
        "-text",
        "-enddate",
        "-startdate",
    ]);
    let shown = text(&o);
    assert!(shown.contains("CA:TRUE, pathlen:0"), "{shown}");
    assert!(shown.contains("Certificate Sign, CRL Sign"), "{shown}");

    // New certificates chain through it; old ones still verify through the kept CA.
    let new_leaf = t.join("new-leaf.pem");
    let req = csr(t, "new", EC, "/CN=new.internal", Some("DNS:new.internal"));
    let o = issue(&dir, &env, &req, &["--out", p(&new_leaf)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&dir, &new_leaf, "sslserver");
    assert!(o.status.success(), "{}", text(&o));
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&root_cert),
        "-untrusted",
        p(&kept_cert),
        "-purpose",
        "sslserver",
        p(&old_leaf),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&dir, &old_leaf, "sslserver");
    assert!(
        !o.status.success(),
        "the old leaf does not chain through the new CA"
    );

    // Recorded under the root, with an audit row.
    let store = store_for(&dir, None).await;
    let rec = store
        .get_certificate(&sn(&new_serial))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.profile, "ca");
    assert_eq!((rec.not_after - rec.not_before).whole_days(), 400);
    let root_key_id = store
        .get_certificate(&sn(&new_serial))
        .await
        .unwrap()
        .unwrap()
        .issuer_key_id;
    let audit = store.list_audit(20).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "create-issuing-ca"
            && a.serial.as_deref() == Some(new_serial.as_str())
            && a.detail.contains(&old_serial)),
        "{audit:?}"
    );

    // The root revokes the old CA: listed on its CRL, under the same key id.
    let crl = t.join("root.pem");
    let o = signet(
        &env_ref,
        &[
            "ca",
            "root-crl",
            "--dir",
            p(&dir),
            "--revoke",
            p(&kept_cert),
            "--reason",
            "superseded",
            "--out",
            p(&crl),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let listed = crl_verified(&crl, &root_cert, false);
    assert!(
        listed.contains(&old_serial.to_ascii_uppercase()) && listed.contains("Superseded"),
        "{listed}"
    );
    assert!(
        !listed.contains(&new_serial.to_ascii_uppercase()),
        "{listed}"
    );
    let old = store
        .get_certificate(&sn(&old_serial))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.issuer_key_id, old.revocation_reason),
        (root_key_id, Some(signet_ca::RevocationReason::Superseded))
    );
    store.close().await;

    // A second rotation keeps the second CA too, under its own serial.
    let o = signet(&env_ref, &["ca", "new-issuing", "--dir", p(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join(format!("issuing_ca.{new_serial}.crt")).exists());
}

/// `signet backup` copies the SQLite database consistently while certificates are being
/// issued: the sqlite3 CLI finds the copy intact, every certificate in it with its audit
/// row; it restores as a working database; an existing file is never overwritten; a
/// PostgreSQL deployment is pointed to pg_dump.
#[tokio::test]
async fn backup_copies_the_sqlite_database_consistently_while_it_is_written() {
    let (tmp, dir, env) = init(None, &[]);
    let t = tmp.path().to_path_buf();
    let mut serials = Vec::new();
    for i in 0..3 {
        let leaf = t.join(format!("leaf{i}.pem"));
        let req = csr(
            &t,
            &format!("l{i}"),
            EC,
            &format!("/CN=l{i}.internal"),
            None,
        );
        let o = issue(&dir, &env, &req, &["--out", p(&leaf)]);
        assert!(o.status.success(), "{}", text(&o));
        serials.push(serial_of(&leaf));
    }
    // More issuance while the copy is taken.
    let writer = {
        let (dir, env, t) = (dir.clone(), env.clone(), t.clone());
        std::thread::spawn(move || {
            for i in 3..13 {
                let req = csr(
                    &t,
                    &format!("l{i}"),
                    EC,
                    &format!("/CN=l{i}.internal"),
                    None,
                );
                let o = issue(
                    &dir,
                    &env,
                    &req,
                    &["--out", p(&t.join(format!("leaf{i}.pem")))],
                );
                assert!(o.status.success(), "{}", text(&o));
            }
        })
    };
    let copy = t.join("backup.db");
    let o = signet(&[], &["backup", "--dir", p(&dir), "--out", p(&copy)]);
    writer.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    assert_eq!(sqlite3(&copy, "PRAGMA integrity_check"), ["ok"]);
    let n: usize = sqlite3(&copy, "SELECT count(*) FROM certificates")[0]
        .parse()
        .unwrap();
    assert!((3..=13).contains(&n), "{n} certificates in the copy");
    let orphans = sqlite3(
        &copy,
        "SELECT count(*) FROM certificates c WHERE NOT EXISTS \
         (SELECT 1 FROM audit_log a WHERE a.serial = c.serial AND a.action = 'issue')",
    );
    assert_eq!(orphans, ["0"], "every certificate with its audit row");
    assert_eq!(
        sqlite3(&copy, "PRAGMA journal_mode"),
        ["delete"],
        "self-contained"
    );

    // Restored as a database, the records are there.
    let restored = t.join("restored.db");
    std::fs::copy(&copy, &restored).unwrap();
    let store = Store::connect(&format!("sqlite://{}", restored.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    for s in &serials {
        assert!(
            store.get_certificate(&sn(s)).await.unwrap().is_some(),
            "{s}"
        );
    }
    store.close().await;

    // Never over an existing file.
    let before = std::fs::read(&copy).unwrap();
    let o = signet(&[], &["backup", "--dir", p(&dir), "--out", p(&copy)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("exists"), "{}", text(&o));
    assert_eq!(std::fs::read(&copy).unwrap(), before);

    // PostgreSQL has its own tools.
    let db = TestDb::postgres().await;
    let (pg_tmp, pg_dir, _) = init(Some(db.url()), &[]);
    let out = pg_tmp.path().join("pg.db");
    let o = signet(
        &[("SIGNET_DATABASE_URL", db.url())],
        &["backup", "--dir", p(&pg_dir), "--out", p(&out)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("pg_dump"), "{}", text(&o));
    assert!(!out.exists());
}

/// With encrypted CA keys, `ca new-issuing` needs SIGNET_CA_PASSPHRASE for the root key and
/// encrypts the new issuing key with it, which openssl reads and `issue --local` uses.
#[tokio::test]
async fn new_issuing_with_encrypted_keys() {
    let pass = [("SIGNET_CA_PASSPHRASE", "s3cret passphrase")];
    let (tmp, dir, env) = init(None, &pass);
    let o = signet(&[], &["ca", "new-issuing", "--dir", p(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("SIGNET_CA_PASSPHRASE"), "{}", text(&o));
    let before = std::fs::read(dir.join("issuing_ca.crt")).unwrap();
    let o = signet(&pass, &["ca", "new-issuing", "--dir", p(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read(dir.join("issuing_ca.crt")).unwrap(), before);
    let key = std::fs::read_to_string(dir.join("issuing_ca.key")).unwrap();
    assert!(
        key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{key}"
    );
    let o = openssl(&[
        "pkey",
        "-in",
        p(&dir.join("issuing_ca.key")),
        "-passin",
        "pass:s3cret passphrase",
        "-noout",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let leaf = tmp.path().join("leaf.pem");
    let req = csr(
        tmp.path(),
        "enc",
        EC,
        "/CN=enc.internal",
        Some("DNS:enc.internal"),
    );
    let o = issue(&dir, &env, &req, &["--out", p(&leaf)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&dir, &leaf, "sslserver");
    assert!(o.status.success(), "{}", text(&o));
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> signet_ca::Serial {
    signet_ca::Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}
