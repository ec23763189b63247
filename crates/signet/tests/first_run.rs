//! The first start and the mistakes around it, through the real `signet` binary: what a first
//! `signet serve` records in the `signet.toml` it makes, a CA bound to its database (another
//! CA's, or an empty one where the directory shows a history, refused), an unreachable
//! PostgreSQL reported at once with where and why, a failed first start that leaves nothing
//! behind, a missing `--dir` refused, one server per data directory, `--pid-file`, and the
//! advice `init` gives. Each refusal is checked for its message and for what it did not
//! write: files are listed and databases read with the sqlite3 and psql CLIs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use signet_testkit::TestDb;

mod common;
use common::{base_command, free_port, p, sqlite3, text};

/// How long a server may take to come up (a first start makes a CA and a database).
const STARTUP: Duration = Duration::from_secs(90);
/// How long a refused start may take to exit.
const REFUSAL: Duration = Duration::from_secs(20);

/// A `signet serve` process, killed if the test ends without stopping it.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `signet serve ARGS` (which listens on `port`), run in `cwd`, its output to a log file.
    fn spawn(tmp: &Path, port: u16, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Server {
        let log = tmp.join(format!("serve-{port}-{}.log", free_port()));
        let out = fs::File::create(&log).unwrap();
        let mut cmd = base_command();
        cmd.arg("serve")
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server {
            child: cmd.spawn().unwrap(),
            port,
            log,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until `/readyz` answers 200 over HTTPS, trusting only `root` (which
    /// may not exist yet); panics with the log if the server exits first.
    async fn wait_ready(&mut self, root: &Path) -> reqwest::Client {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("signet serve exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {STARTUP:?}:\n{}",
                self.log()
            );
            if root.exists() {
                let https = client(root);
                let url = format!("https://127.0.0.1:{}/readyz", self.port);
                if let Ok(r) = https.get(&url).send().await
                    && r.status().is_success()
                {
                    return https;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A client trusting only `root`.
fn client(root: &Path) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs `signet ARGS` in `cwd` to completion within `limit` (killed after it); its output
/// and how long it took.
fn signet_within(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
    limit: Duration,
) -> (Output, Duration) {
    let out_dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut cmd = base_command();
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "signet {args:?} did not finish within {limit:?}:\n{}{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    };
    (output, started.elapsed())
}

/// `signet ARGS` to completion (bounded); the tests give absolute paths.
fn signet(args: &[&str], env: &[(&str, &str)]) -> Output {
    signet_within(args, env, Path::new("/"), Duration::from_secs(120)).0
}

/// The `error:` line of a failed command.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}", text(o));
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{}", text(o)))
        .to_string()
}

/// The names in a data directory besides `serve.lock` (the lock every `serve` takes first,
/// and leaves: the kernel releases it), or nothing if it does not exist.
fn written(dir: &Path) -> BTreeSet<String> {
    let mut names = entries(dir);
    names.remove("serve.lock");
    names
}

/// The names in a directory (empty if it does not exist).
fn entries(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `sha256:` + hex of the first certificate in a PEM file, as the server logs it.
fn fingerprint(pem_file: &Path) -> String {
    let der = CertificateDer::from_pem_file(pem_file).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

/// `psql URL -c SQL` (the PostgreSQL CLI as an independent reader), its output rows.
fn psql(url: &str, sql: &str) -> Vec<String> {
    let o = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("the psql CLI must be installed (apt-get install postgresql-client)");
    assert!(o.status.success(), "psql {sql}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Row counts of the tables a CA writes, as one line, read by `count` (`sqlite3`/`psql`).
fn counts(count: impl Fn(&str) -> Vec<String>) -> String {
    count(
        "SELECT (SELECT count(*) FROM certificates) || ' certificates, ' || \
         (SELECT count(*) FROM crls) || ' crls, ' || \
         (SELECT count(*) FROM audit_log) || ' audit rows, ' || \
         (SELECT count(*) FROM ca_binding) || ' bindings'",
    )
    .join("")
}

/// A new CA in `dir` by `signet init` (SQLite, unless `env` says otherwise).
fn init(dir: &Path, env: &[(&str, &str)]) -> Output {
    let o = signet(&["init", "--dir", p(dir)], env);
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// A key and CSR by openssl for `name`; the CSR's PEM.
fn csr(dir: &Path, name: &str) -> PathBuf {
    let (key, csr) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
    );
    let o = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:P-256",
            "-keyout",
            p(&key),
            "-out",
            p(&csr),
        ])
        .args(["-subj", &format!("/CN={name}")])
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    assert!(o.status.success(), "{}", text(&o));
    csr
}

/// The lines of advice about the root key and the root CRL, with the directory's path
/// replaced by DIR, so that `init`'s and a first `serve`'s can be compared.
fn advice(stdout: &[u8], dir: &Path) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("The root key") || l.starts_with("The root CRL"))
        .map(|l| l.replace(p(dir), "DIR"))
        .collect()
}

#[tokio::test]
async fn a_missing_data_directory_is_refused_unless_it_is_the_default_or_init_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("signet-dta");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (o, _) = signet_within(
        &["serve", "--dir", p(&typo), "--listen", &listen],
        &[],
        tmp.path(),
        REFUSAL,
    );
    let error = error_line(&o);
    assert!(
        error.contains(&format!(
            "the data directory {} does not exist",
            typo.display()
        )) && error.contains(&format!("signet init --dir {}", typo.display()))
            && error.contains("--init"),
        "{error}"
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));

    // --init makes it (a new CA, as a first start does).
    let mut server = Server::spawn(
        tmp.path(),
        port,
        &[
            "--dir",
            p(&typo),
            "--init",
            "--listen",
            &listen,
            "--responder-listen",
            "off",
        ],
        &[],
        tmp.path(),
    );
    server.wait_ready(&typo.join("root_ca.crt")).await;
    assert_eq!(mode(&typo), 0o700);
    server.stop().await;

    // The default ./signet-data is made without asking.
    let cwd = tmp.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::spawn(
        tmp.path(),
        port,
        &["--listen", &listen, "--responder-listen", "off"],
        &[],
        &cwd,
    );
    server
        .wait_ready(&cwd.join("signet-data").join("root_ca.crt"))
        .await;
    assert_eq!(mode(&cwd.join("signet-data")), 0o700);
    server.stop().await;
}

#[tokio::test]
async fn the_first_start_records_what_it_was_told_and_a_bare_restart_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db_dir = tmp.path().join("db");
    fs::create_dir(&db_dir).unwrap();
    let db_file = db_dir.join("ca.db");
    let db_url = format!("sqlite://{}", db_file.display());
    let (port, ocsp_port) = (free_port(), free_port());
    let (listen, ocsp_listen) = (
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{ocsp_port}"),
    );
    let mut server = Server::spawn(
        tmp.path(),
        port,
        &[
            "--dir",
            p(&data),
            "--init",
            "--listen",
            &listen,
            "--responder-listen",
            &ocsp_listen,
            "--hostname",
            "ca.internal",
        ],
        &[("SIGNET_DATABASE_URL", &db_url)],
        tmp.path(),
    );
    let https = server.wait_ready(&data.join("root_ca.crt")).await;

    // The advice `init` prints, printed by the first start too.
    let log = server.log();
    let init_dir = tmp.path().join("by-init");
    let by_init = init(&init_dir, &[]);
    let expected = advice(&by_init.stdout, &init_dir);
    assert_eq!(expected.len(), 2, "{}", text(&by_init));
    assert_eq!(advice(log.as_bytes(), &data), expected, "{log}");
    assert!(
        log.contains(&fingerprint(&data.join("root_ca.crt"))),
        "{log}"
    );

    // signet.toml says what the start was told; certificates point at the responder given.
    let config = data.join("signet.toml");
    assert_eq!(mode(&config), 0o644, "no password in the database URL");
    let doc: toml::Table = fs::read_to_string(&config).unwrap().parse().unwrap();
    assert_eq!(doc["server"]["listen"].as_str(), Some(listen.as_str()));
    assert_eq!(
        doc["server"]["hostnames"].as_array().unwrap(),
        &vec![toml::Value::from("ca.internal")]
    );
    assert_eq!(
        doc["responder"]["listen"].as_str(),
        Some(ocsp_listen.as_str())
    );
    assert_eq!(doc["database"]["url"].as_str(), Some(db_url.as_str()));
    let base = format!("http://{ocsp_listen}");
    assert_eq!(
        doc["urls"]["ocsp"].as_str(),
        Some(format!("{base}/ocsp").as_str())
    );
    assert_eq!(
        doc["urls"]["ca_issuers"].as_str(),
        Some(format!("{base}/ca/issuing.crt").as_str())
    );
    assert_eq!(
        doc["urls"]["crl"].as_str(),
        Some(format!("{base}/crl/issuing.crl").as_str())
    );
    assert!(
        !data.join("signet.db").exists(),
        "the default database was made"
    );

    let admin = fs::read_to_string(data.join("admin.token")).unwrap();
    let request = csr(tmp.path(), "api.internal");
    let resp = https
        .post(format!("https://127.0.0.1:{port}/v1/certificates"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({ "csr": fs::read_to_string(&request).unwrap() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let issued: serde_json::Value = resp.json().await.unwrap();
    let leaf = tmp.path().join("leaf.pem");
    fs::write(&leaf, issued["certificate"].as_str().unwrap()).unwrap();
    let o = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "authorityInfoAccess,crlDistributionPoints",
        ])
        .args(["-in", p(&leaf)])
        .output()
        .unwrap();
    let exts = String::from_utf8_lossy(&o.stdout);
    for want in [
        format!("OCSP - URI:{base}/ocsp"),
        format!("CA Issuers - URI:{base}/ca/issuing.crt"),
        format!("URI:{base}/crl/issuing.crl"),
    ] {
        assert!(exts.contains(&want), "{want} not in:\n{exts}");
    }
    assert!(!exts.contains(":8080"), "{exts}");
    server.stop().await;

    // A restart with nothing on the command line nor in the environment listens where the
    // first was told, on the same database, and serves the root CRL there.
    let mut again = Server::spawn(tmp.path(), port, &["--dir", p(&data)], &[], tmp.path());
    let https = again.wait_ready(&data.join("root_ca.crt")).await;
    let crl = https
        .get(format!("{base}/crl/root.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status(), 200, "{}", again.log());
    let server_certs = sqlite3(
        &db_file,
        "SELECT count(*) FROM audit_log WHERE action = 'issue-server-cert'",
    );
    assert_eq!(
        server_certs,
        ["2"],
        "both starts used {}",
        db_file.display()
    );
    assert!(!data.join("signet.db").exists());
    again.stop().await;
}

#[tokio::test]
async fn a_database_of_another_ca_is_refused_and_an_old_one_of_this_ca_is_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a, &[]);
    init(&b, &[]);
    let a_db = a.join("signet.db");
    let a_url = format!("sqlite://{}", a_db.display());
    let before = counts(|sql| sqlite3(&a_db, sql));
    assert_eq!(before, "0 certificates, 1 crls, 2 audit rows, 1 bindings");
    let (fa, fb) = (
        fingerprint(&a.join("root_ca.crt")),
        fingerprint(&b.join("root_ca.crt")),
    );
    let b_before = written(&b);

    // serve, issue --local, a standalone responder, ca root-crl and ca new-issuing of B,
    // each pointed at A's database.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let request = csr(tmp.path(), "api.internal");
    let env = [("SIGNET_DATABASE_URL", a_url.as_str())];
    for args in [
        vec![
            "serve",
            "--dir",
            p(&b),
            "--listen",
            &listen,
            "--responder-listen",
            "off",
        ],
        vec!["issue", "--local", "--dir", p(&b), "--csr", p(&request)],
        vec!["responder", "--dir", p(&b), "--listen", &listen],
        vec!["ca", "root-crl", "--dir", p(&b)],
        vec!["ca", "new-issuing", "--dir", p(&b)],
    ] {
        let (o, _) = signet_within(&args, &env, tmp.path(), REFUSAL);
        let error = error_line(&o);
        assert!(
            error.contains("belongs to another CA")
                && error.contains(&fa)
                && error.contains(&fb)
                && error.contains(&format!("SQLite {}", a_db.display())),
            "{args:?}: {error}"
        );
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("is listening"),
            "{}",
            text(&o)
        );
        assert_eq!(counts(|sql| sqlite3(&a_db, sql)), before, "{args:?}");
        assert_eq!(written(&b), b_before, "{args:?} wrote into {}", b.display());
    }
    // Nothing listens on the port it was given.
    assert!(std::net::TcpStream::connect(&listen).is_err());

    // A first start onto A's database: refused, and nothing of a new CA is left.
    let c = tmp.path().join("c");
    let (o, _) = signet_within(
        &["serve", "--dir", p(&c), "--init", "--listen", &listen],
        &env,
        tmp.path(),
        REFUSAL,
    );
    let error = error_line(&o);
    assert!(
        error.contains("already belongs to a CA") && error.contains(&fa),
        "{error}"
    );
    assert!(!c.exists(), "{:?}", entries(&c));
    assert_eq!(counts(|sql| sqlite3(&a_db, sql)), before);

    // A database from before the record (migration 0005 undone): B's records are not this
    // CA's, so serving A on it is refused; A's own is adopted by A's first start.
    let b_db = b.join("signet.db");
    let undo = "DROP TABLE ca_binding; DELETE FROM _sqlx_migrations WHERE version = 5;";
    sqlite3(&b_db, undo);
    sqlite3(&a_db, undo);
    let (o, _) = signet_within(
        &[
            "serve",
            "--dir",
            p(&a),
            "--listen",
            &listen,
            "--responder-listen",
            "off",
        ],
        &[(
            "SIGNET_DATABASE_URL",
            &format!("sqlite://{}", b_db.display()),
        )],
        tmp.path(),
        REFUSAL,
    );
    let error = error_line(&o);
    assert!(
        error.contains("holds records, but no certificate or CRL of this CA")
            && error.contains(&fa),
        "{error}"
    );
    assert_eq!(sqlite3(&b_db, "SELECT count(*) FROM ca_binding"), ["0"]);
    assert!(!a.join("admin.token").exists());

    let mut server = Server::spawn(
        tmp.path(),
        port,
        &[
            "--dir",
            p(&a),
            "--listen",
            &listen,
            "--responder-listen",
            "off",
        ],
        &[],
        tmp.path(),
    );
    server.wait_ready(&a.join("root_ca.crt")).await;
    assert_eq!(
        sqlite3(&a_db, "SELECT root_fingerprint FROM ca_binding"),
        [fa.as_str()]
    );
    assert_eq!(
        sqlite3(
            &a_db,
            "SELECT actor FROM audit_log WHERE action = 'bind-database'"
        ),
        ["signet-init", "signet-serve"],
        "init's binding, then the adoption"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_empty_database_is_refused_when_the_directory_shows_a_history() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init(&data, &[]);
    let empty = tmp.path().join("empty.db");
    let url = format!("sqlite://{}", empty.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let before = written(&data);
    for args in [
        vec![
            "serve",
            "--dir",
            p(&data),
            "--listen",
            &listen,
            "--responder-listen",
            "off",
        ],
        vec![
            "issue",
            "--local",
            "--dir",
            p(&data),
            "--csr",
            p(&csr(tmp.path(), "api.internal")),
        ],
    ] {
        let (o, _) = signet_within(&args, &[("SIGNET_DATABASE_URL", &url)], tmp.path(), REFUSAL);
        let error = error_line(&o);
        assert!(
            error.contains(&format!(
                "the database (SQLite {}) is empty",
                empty.display()
            )) && error.contains(p(&data.join("root_ca.crl")))
                && error.contains("restore it from a backup"),
            "{args:?}: {error}"
        );
        assert_eq!(
            counts(|sql| sqlite3(&empty, sql)),
            "0 certificates, 0 crls, 0 audit rows, 0 bindings",
            "{args:?}"
        );
        assert_eq!(written(&data), before, "{args:?}");
    }
}

#[tokio::test]
async fn an_unreachable_postgresql_fails_fast_and_names_the_server_and_the_cause() {
    let db = TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let closed = free_port();
    let socket_dir = db
        .url()
        .split("host=")
        .nth(1)
        .map(|rest| rest.split('&').next().unwrap().to_string());
    let mut cases = vec![
        (
            format!("postgres://signet@127.0.0.1:{closed}/signet"),
            vec![format!("127.0.0.1:{closed}"), "connection refused".into()],
        ),
        (
            "postgres://signet:pw@no-such-host.invalid/signet".to_string(),
            vec!["no-such-host.invalid:5432".into(), "unknown host".into()],
        ),
    ];
    if let Some(dir) = &socket_dir {
        // The private cluster's socket, as a role that does not exist.
        cases.push((
            format!("postgres:///postgres?host={dir}&user=nosuchrole"),
            vec![
                format!("unix socket {dir}/.s.PGSQL.5432"),
                "authentication failed for user \"nosuchrole\"".into(),
            ],
        ));
    }
    for (url, wanted) in &cases {
        let (o, took) = signet_within(
            &["serve", "--dir", p(&data), "--init", "--listen", &listen],
            &[("SIGNET_DATABASE_URL", url)],
            tmp.path(),
            REFUSAL,
        );
        let error = error_line(&o);
        for want in wanted {
            assert!(error.contains(want.as_str()), "{want:?} not in: {error}");
        }
        assert!(!error.contains(":pw@"), "the password is shown: {error}");
        assert_eq!(
            error.matches("cannot connect").count(),
            1,
            "said more than once: {error}"
        );
        assert!(took < Duration::from_secs(8), "{url}: took {took:?}");
        assert!(!data.exists(), "{url}: {:?}", entries(&data));
    }
    // Nothing reached the database.
    assert_eq!(
        psql(
            db.url(),
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        ["0"]
    );
}

#[tokio::test]
async fn a_failed_first_start_leaves_nothing_and_the_retry_is_a_clean_first_start() {
    let db = TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A password in the URL (never checked by the private cluster) makes signet.toml private.
    let url = format!("{}&password=first-start-secret", db.url());
    let (port, ocsp_port) = (free_port(), free_port());
    let (listen, ocsp_listen) = (
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{ocsp_port}"),
    );
    let args = [
        "--dir",
        p(&data),
        "--init",
        "--listen",
        &listen,
        "--responder-listen",
        &ocsp_listen,
    ];
    // The database refuses the CA's first records (the root CRL), after every file of the
    // new CA was written.
    let o = signet(&["migrate", "--database-url", &url], &[]);
    assert!(o.status.success(), "{}", text(&o));
    psql(
        db.url(),
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'crls refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON crls FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let mut serve_args = vec!["serve"];
    serve_args.extend_from_slice(&args);
    let (o, _) = signet_within(
        &serve_args,
        &[("SIGNET_DATABASE_URL", &url)],
        tmp.path(),
        REFUSAL,
    );
    let error = error_line(&o);
    assert!(
        error.contains("recording the new CA in the database")
            && error.contains("crls refused by the test"),
        "{error}"
    );
    assert!(!data.exists(), "{:?}", entries(&data));
    assert_eq!(
        counts(|sql| psql(db.url(), sql)),
        "0 certificates, 0 crls, 0 audit rows, 0 bindings"
    );
    // The ports were let go.
    assert!(std::net::TcpListener::bind(&listen).is_ok());

    // The retry makes exactly what a clean first start makes: the root CRL among it.
    psql(db.url(), "DROP TRIGGER refuse ON crls");
    let mut server = Server::spawn(
        tmp.path(),
        port,
        &args,
        &[("SIGNET_DATABASE_URL", &url)],
        tmp.path(),
    );
    let https = server.wait_ready(&data.join("root_ca.crt")).await;
    let want: BTreeSet<String> = [
        "admin.token",
        "issuing_ca.crt",
        "issuing_ca.key",
        "provisioners",
        "root_ca.crl",
        "root_ca.crt",
        "root_ca.key",
        "serve.lock",
        "signet.toml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(entries(&data), want);
    assert_eq!(
        mode(&data.join("signet.toml")),
        0o600,
        "the URL has a password"
    );
    let doc: toml::Table = fs::read_to_string(data.join("signet.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(doc["database"]["url"].as_str(), Some(url.as_str()));
    let fp = fingerprint(&data.join("root_ca.crt"));
    assert_eq!(
        psql(db.url(), "SELECT root_fingerprint FROM ca_binding"),
        [fp]
    );
    let crl = https
        .get(format!("http://{ocsp_listen}/crl/root.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status(), 200, "{}", server.log());
    let crl_file = tmp.path().join("root.crl");
    fs::write(&crl_file, crl.bytes().await.unwrap()).unwrap();
    let o = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in", p(&crl_file)])
        .args(["-CAfile", p(&data.join("root_ca.crt"))])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("verify OK"),
        "{}",
        text(&o)
    );
    server.stop().await;

    // Started without the variable, it uses the database it recorded, not a new SQLite one
    // (which used to restart the CRL numbers at 1).
    let mut again = Server::spawn(tmp.path(), port, &["--dir", p(&data)], &[], tmp.path());
    again.wait_ready(&data.join("root_ca.crt")).await;
    assert!(
        again.log().contains("database=\"postgres\""),
        "{}",
        again.log()
    );
    assert!(!data.join("signet.db").exists());
    again.stop().await;
}

#[tokio::test]
async fn a_second_server_on_one_directory_is_refused_before_it_writes_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pid_file = tmp.path().join("run").join("serve.pid");
    fs::create_dir(tmp.path().join("run")).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut first = Server::spawn(
        tmp.path(),
        port,
        &[
            "--dir",
            p(&data),
            "--init",
            "--listen",
            &listen,
            "--responder-listen",
            "off",
            "--pid-file",
            p(&pid_file),
        ],
        &[],
        tmp.path(),
    );
    first.wait_ready(&data.join("root_ca.crt")).await;
    let pid = first.child.id();
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), format!("{pid}\n"));
    let db = data.join("signet.db");
    let before = counts(|sql| sqlite3(&db, sql));
    let files = entries(&data);

    let other = free_port();
    let other_listen = format!("127.0.0.1:{other}");
    let (o, took) = signet_within(
        &["serve", "--dir", p(&data), "--listen", &other_listen],
        &[],
        tmp.path(),
        REFUSAL,
    );
    let error = error_line(&o);
    assert!(
        error.contains("signet serve is already running") && error.contains(&format!("pid {pid}")),
        "{error}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(std::net::TcpStream::connect(&other_listen).is_err());
    assert_eq!(counts(|sql| sqlite3(&db, sql)), before);
    assert_eq!(entries(&data), files);

    // The README's reload recipe signals exactly this server, which keeps serving.
    let o = Command::new("sh")
        .args(["-c", &format!("kill -HUP \"$(cat {})\"", p(&pid_file))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.log().contains("SIGHUP") {
        assert!(Instant::now() < deadline, "no reload:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first.child.try_wait().unwrap().is_none(), "{}", first.log());
    first.wait_ready(&data.join("root_ca.crt")).await;
    first.stop().await;
    assert!(!pid_file.exists(), "the pid file outlived the server");

    // The lock goes with the process; a port in use fails before the database is written.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let before = counts(|sql| sqlite3(&db, sql));
    for args in [
        vec!["serve", "--dir", p(&data), "--listen", &taken_addr],
        vec![
            "serve",
            "--dir",
            p(&data),
            "--listen",
            &other_listen,
            "--responder-listen",
            &taken_addr,
        ],
    ] {
        let (o, _) = signet_within(&args, &[], tmp.path(), REFUSAL);
        let error = error_line(&o);
        assert!(
            error.contains(&format!("listening on {taken_addr}")),
            "{args:?}: {error}"
        );
        assert_eq!(counts(|sql| sqlite3(&db, sql)), before, "{args:?}");
    }
    // A first start on a taken port leaves no CA behind.
    let fresh = tmp.path().join("fresh");
    let (o, _) = signet_within(
        &[
            "serve",
            "--dir",
            p(&fresh),
            "--init",
            "--listen",
            &taken_addr,
        ],
        &[],
        tmp.path(),
        REFUSAL,
    );
    assert!(error_line(&o).contains("listening on"), "{}", text(&o));
    assert!(!fresh.exists(), "{:?}", entries(&fresh));
}
