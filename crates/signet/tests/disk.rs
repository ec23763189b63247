//! **Needs root** (it mounts filesystems; CI runs the suite as root). Run as another user,
//! each test here fails at once with "must run as root": none is skipped.
//!
//! Storage faults with SQLite (issue 7, hardening): a full disk and a data directory that
//! turns read-only. "A clear error, no corrupt state."
//!
//! - `a_full_disk_answers_503_and_recovers_without_a_restart`: the data directory on a small
//!   tmpfs, filled to a few hundred KiB of its end; issuance until the disk is full answers
//!   only 201 or 503 `database-unavailable`, each promptly; the server stays up, reads and
//!   `/readyz` keep working; once space is freed issuance recovers by itself; afterwards
//!   every certificate that got a 201 is in the database, no serial repeats and
//!   `PRAGMA integrity_check` is ok.
//! - `a_data_directory_gone_read_only_answers_503_and_keeps_serving_ocsp`: Linux refuses
//!   `mount -o remount,ro` while a process holds files open for writing (EBUSY: SQLite keeps
//!   `signet.db`, `-wal` and `-shm` open read-write), so neither a test nor an operator can do
//!   that under a running server. What does happen is the kernel forcing a filesystem
//!   read-only after an error (ext4 `errors=remount-ro`); the test does exactly that on an
//!   ext4 loop device (`/sys/fs/ext4/DEV/trigger_fs_error`). Issuance and revocation answer
//!   503 promptly, OCSP still answers (cached and uncached), reads work. Such a filesystem
//!   cannot be made writable again without unmounting it, so recovery is: stop, unmount,
//!   `e2fsck`, mount, start; everything acknowledged before is there, intact.
//! - `serve_on_a_read_only_data_directory_fails_with_a_clear_message`: a data directory on
//!   a tmpfs remounted read-only (nothing open then) makes `signet serve` exit non-zero
//!   before listening, naming the problem; remounted read-write, it starts.
//!
//! These need root (mount) and, for the read-only case, a loop device and `mkfs.ext4`;
//! without them the tests fail with a message, they do not skip. Every mount is undone by a
//! guard, also when a test fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Server, base_command, client, p, sqlite3, text};

/// An answer under a storage fault may take the SQLite busy timeout (5 s) plus slack; never
/// the 30 s request timeout.
const PROMPT: Duration = Duration::from_secs(12);
const RECOVERY: Duration = Duration::from_secs(20);

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Fail (not skip) unless we are root: mounting needs it.
fn require_root() {
    let o = run("id", &["-u"]);
    let uid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "these tests mount filesystems and must run as root (CI runs them as root); uid is {uid}"
    );
}

/// A mount, undone on drop (lazily, so a crashed server cannot make it stick).
struct Mount {
    dir: PathBuf,
    loop_image: Option<PathBuf>,
}

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        require_root();
        fs::create_dir_all(dir).unwrap();
        let o = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                p(dir),
            ],
        );
        assert!(
            o.status.success(),
            "mount -t tmpfs failed (these tests need root and mount): {}",
            text(&o)
        );
        Mount {
            dir: dir.to_path_buf(),
            loop_image: None,
        }
    }

    /// An ext4 filesystem in `image` on a loop device, with `errors=remount-ro`.
    fn ext4(dir: &Path, image: &Path, size_mb: u64) -> Mount {
        require_root();
        fs::create_dir_all(dir).unwrap();
        let f = fs::File::create(image).unwrap();
        f.set_len(size_mb << 20).unwrap();
        drop(f);
        let o = run("mkfs.ext4", &["-q", "-F", p(image)]);
        assert!(
            o.status.success(),
            "mkfs.ext4 failed (apt-get install e2fsprogs): {}",
            text(&o)
        );
        let o = run("mount", &["-o", "loop,errors=remount-ro", p(image), p(dir)]);
        assert!(
            o.status.success(),
            "mounting an ext4 image on a loop device failed (this test needs root and a \
             loop device, /dev/loop-control): {}",
            text(&o)
        );
        Mount {
            dir: dir.to_path_buf(),
            loop_image: Some(image.to_path_buf()),
        }
    }

    fn remount(&self, opts: &str) {
        let o = run("mount", &["-o", &format!("remount,{opts}"), p(&self.dir)]);
        assert!(o.status.success(), "mount -o remount,{opts}: {}", text(&o));
    }

    /// The loop device under this mount (from /proc/self/mountinfo).
    fn device(&self) -> String {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = fs::canonicalize(&self.dir).unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(p(&dir)))
            .unwrap_or_else(|| panic!("{} is not in mountinfo", dir.display()));
        let source = line.split(" - ").nth(1).unwrap().split(' ').nth(1).unwrap();
        source.trim_start_matches("/dev/").to_string()
    }

    fn unmount(&self) -> Output {
        run("umount", &[p(&self.dir)])
    }

    fn mount_again(&self) {
        let image = self.loop_image.as_ref().unwrap();
        let o = run("e2fsck", &["-f", "-y", p(image)]);
        // 0: clean, 1: errors corrected (the error we triggered is recorded in the
        // superblock).
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "e2fsck found damage it could not fix: {}",
            text(&o)
        );
        let o = run(
            "mount",
            &["-o", "loop,errors=remount-ro", p(image), p(&self.dir)],
        );
        assert!(o.status.success(), "mount again: {}", text(&o));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let o = run("umount", &[p(&self.dir)]);
        if !o.status.success() {
            let _ = run("umount", &["-l", p(&self.dir)]);
        }
    }
}

/// `signet serve --dir DATA` (its log outside the data directory) once its API and its
/// responder answer `/readyz`; with a client trusting its root.
async fn start(log_dir: &Path, data: &Path) -> (Server, reqwest::Client) {
    let mut server = Server::start(log_dir, &[], &["--dir", p(data)]).await;
    let https = client(&data.join("root_ca.crt"));
    server.wait_ready(&https).await;
    server.wait_for(&https, &server.ocsp_url("/readyz")).await;
    (server, https)
}

/// SIGTERM, and a clean exit within 40 s.
fn stop(server: &mut Server) {
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "serve exited {status}:\n{}", server.log());
}

/// A P-256 CSR for `name` made by `openssl req` (PEM); its key stays in `dir`.
fn csr(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let o = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", p(&key)])
        .args(["-out", p(&csr), "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    assert!(o.status.success(), "{}", text(&o));
    fs::read_to_string(csr).unwrap()
}

/// The answer to an issuance or revocation: status, body, and how long it took.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Value,
    took: Duration,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
        took: started.elapsed(),
    }
}

async fn issue(https: &reqwest::Client, base: &str, admin: &str, csr: &str) -> Answer {
    send(
        https
            .post(format!("{base}/v1/certificates"))
            .bearer_auth(admin)
            .json(&json!({ "csr": csr })),
    )
    .await
}

async fn revoke(https: &reqwest::Client, base: &str, admin: &str, serial: &str) -> Answer {
    send(
        https
            .post(format!("{base}/v1/certificates/{serial}/revoke"))
            .bearer_auth(admin)
            .json(&json!({ "reason": "keyCompromise" })),
    )
    .await
}

/// 503 `database-unavailable` as problem+json, within [`PROMPT`].
fn assert_unavailable(what: &str, a: &Answer) {
    assert_eq!(a.status, 503, "{what}: {}", a.body);
    assert_eq!(
        a.content_type.as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    assert_eq!(
        a.body["type"], "urn:signet:problem:database-unavailable",
        "{what}: {}",
        a.body
    );
    assert!(a.took < PROMPT, "{what} took {:?}", a.took);
}

/// After the server stopped: the file is intact, every acknowledged serial is in it, and no
/// serial repeats.
fn check_database(db: &Path, acknowledged: &BTreeSet<String>) {
    assert_eq!(sqlite3(db, "PRAGMA integrity_check"), ["ok"]);
    let stored = sqlite3(db, "SELECT serial FROM certificates");
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "a serial repeats");
    let lost: Vec<&String> = acknowledged.difference(&unique).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    // Every stored certificate has its audit row (one transaction).
    let unaudited = sqlite3(
        db,
        "SELECT count(*) FROM certificates c WHERE NOT EXISTS \
         (SELECT 1 FROM audit_log a WHERE a.serial = c.serial AND a.outcome = 'ok')",
    );
    eprintln!(
        "database: {} certificates, {} acknowledged by a 201",
        stored.len(),
        acknowledged.len(),
    );
    assert_eq!(unaudited, ["0"], "certificates without their audit row");
}

/// Fill the filesystem holding `dir` with one file, leaving about `room` bytes free.
fn fill(dir: &Path, room: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let big = vec![0x5au8; 1 << 20];
    let small = vec![0x5au8; 4096];
    let mut written = 0u64;
    for chunk in [&big, &small] {
        loop {
            match f.write(chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling: {e}"),
            }
        }
    }
    f.set_len(written.saturating_sub(room)).unwrap();
    f.sync_all().unwrap();
    path
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn admin_token(data: &Path) -> String {
    fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = Mount::tmpfs(&tmp.path().join("mnt"), "16m");
    let data = mount.dir.join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();

    let (mut server, https) = start(tmp.path(), &data).await;
    let base = server.base();
    let admin = admin_token(&data);
    let csr_pem = csr(&work, "disk.internal");

    // Some certificates while there is room, one of them revoked (for the CRL and OCSP).
    let mut acknowledged = BTreeSet::new();
    for _ in 0..5 {
        let a = issue(&https, &base, &admin, &csr_pem).await;
        assert_eq!(a.status, 201, "{}", a.body);
        acknowledged.insert(a.body["serial_number"].as_str().unwrap().to_string());
    }
    let first = acknowledged.iter().next().unwrap().clone();

    let filler = fill(&mount.dir, 192 << 10);
    // Issue from four clients until the disk has refused 24 times (at most two minutes: a
    // disk that never fills is a failure). SQLite keeps going for a while in the space
    // its WAL already has, so 201s and 503s interleave before the 503s win.
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut slowest = Duration::ZERO;
    let filling = Instant::now();
    while statuses.get(&503).copied().unwrap_or(0) < 24 {
        assert!(
            filling.elapsed() < Duration::from_secs(120),
            "the disk never filled up: {statuses:?}"
        );
        let answers = futures_join4(
            issue(&https, &base, &admin, &csr_pem),
            issue(&https, &base, &admin, &csr_pem),
            issue(&https, &base, &admin, &csr_pem),
            issue(&https, &base, &admin, &csr_pem),
        )
        .await;
        for a in answers {
            *statuses.entry(a.status).or_default() += 1;
            slowest = slowest.max(a.took);
            match a.status {
                201 => {
                    let serial = a.body["serial_number"].as_str().unwrap().to_string();
                    assert!(acknowledged.insert(serial), "a serial was handed out twice");
                }
                503 => assert_unavailable("issuance on a full disk", &a),
                other => panic!(
                    "issuance on a full disk answered {other}: {}\n{}",
                    a.body,
                    server.log()
                ),
            }
        }
    }
    eprintln!(
        "while filling: {statuses:?} in {:?}, slowest answer {slowest:?}",
        filling.elapsed()
    );
    let log = server.log();
    assert!(
        log.contains("database or disk is full"),
        "no SQLITE_FULL in the server log: the 503s had another cause"
    );
    server.alive();

    // Full: the server still reads. /readyz only checks that the database answers a query,
    // not that it can write, so it stays 200 (reads, OCSP and CRLs still work).
    let r = https.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/readyz on a full disk");
    let r = https
        .get(server.url(&format!("/v1/certificates/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "lookup on a full disk");
    let r = https
        .get(server.ocsp_url("/crl/issuing.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "CRL on a full disk");
    let a = revoke(&https, &base, &admin, &first).await;
    assert!(
        a.status == 503 || a.status == 200,
        "revocation on a full disk: {} {}",
        a.status,
        a.body
    );
    if a.status == 503 {
        assert_unavailable("revocation on a full disk", &a);
    }
    let revoked_while_full = a.status == 200;

    // Space again: issuance recovers without a restart.
    fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + RECOVERY;
    loop {
        let a = issue(&https, &base, &admin, &csr_pem).await;
        if a.status == 201 {
            acknowledged.insert(a.body["serial_number"].as_str().unwrap().to_string());
            break;
        }
        assert_unavailable("issuance after freeing space", &a);
        assert!(
            Instant::now() < deadline,
            "no recovery: {}\nserver log (end):\n{}",
            a.body,
            tail(&server.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then ten more, one at a time: every one must succeed. (Counted first and asserted
    // after the database check, so a 201 that was not durable shows as such.)
    let mut after = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..10 {
        let a = issue(&https, &base, &admin, &csr_pem).await;
        *after.entry(a.status).or_default() += 1;
        if a.status == 201 {
            acknowledged.insert(a.body["serial_number"].as_str().unwrap().to_string());
        } else {
            assert_unavailable("issuance after recovery", &a);
        }
    }
    let revoked = revoked_while_full || revoke(&https, &base, &admin, &first).await.status == 200;
    let log = server.log();
    server.alive();
    stop(&mut server);
    eprintln!(
        "pooled connections closed for being left inside a transaction: {}",
        server.log().matches("left inside a transaction").count()
    );
    check_database(&data.join("signet.db"), &acknowledged);
    assert_eq!(
        after.get(&201).copied().unwrap_or(0),
        10,
        "after freeing space, issuance did not fully recover: {after:?}\nserver log (end):\n{}",
        tail(&log, 30)
    );
    assert!(revoked, "revocation after recovery failed");
    let status = sqlite3(
        &data.join("signet.db"),
        &format!("SELECT revoked_at IS NOT NULL FROM certificates WHERE serial = '{first}'"),
    );
    assert_eq!(status, ["1"], "the acknowledged revocation");
}

/// Four futures at once (tokio::join! without a dependency on futures).
async fn futures_join4<F>(a: F, b: F, c: F, d: F) -> [Answer; 4]
where
    F: std::future::Future<Output = Answer>,
{
    let (a, b, c, d) = tokio::join!(a, b, c, d);
    [a, b, c, d]
}

/// openssl's verdict on `leaf`'s status from the responder at `url`.
fn ocsp(url: &str, data: &Path, work: &Path, leaf: &Path) -> Output {
    let chain = work.join("chain.pem");
    fs::write(
        &chain,
        format!(
            "{}{}",
            fs::read_to_string(data.join("root_ca.crt")).unwrap(),
            fs::read_to_string(data.join("issuing_ca.crt")).unwrap()
        ),
    )
    .unwrap();
    Command::new("openssl")
        .args(["ocsp", "-issuer", p(&data.join("issuing_ca.crt"))])
        .args([
            "-cert",
            p(leaf),
            "-url",
            url,
            "-CAfile",
            p(&chain),
            "-no_nonce",
        ])
        .output()
        .unwrap()
}

fn write_leaf(work: &Path, name: &str, answer: &Answer) -> PathBuf {
    let path = work.join(format!("{name}.pem"));
    fs::write(&path, answer.body["certificate"].as_str().unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_gone_read_only_answers_503_and_keeps_serving_ocsp() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = Mount::ext4(&tmp.path().join("mnt"), &tmp.path().join("ext4.img"), 64);
    let data = mount.dir.join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();

    let (mut server, https) = start(tmp.path(), &data).await;
    let base = server.base();
    let admin = admin_token(&data);
    let csr_pem = csr(&work, "ro.internal");
    let ocsp_url = server.ocsp_url("/ocsp");

    let mut acknowledged = BTreeSet::new();
    let mut leaves = Vec::new();
    for i in 0..3 {
        let a = issue(&https, &base, &admin, &csr_pem).await;
        assert_eq!(a.status, 201, "{}", a.body);
        acknowledged.insert(a.body["serial_number"].as_str().unwrap().to_string());
        leaves.push((
            a.body["serial_number"].as_str().unwrap().to_string(),
            write_leaf(&work, &format!("leaf{i}"), &a),
        ));
    }
    let a = revoke(&https, &base, &admin, &leaves[0].0).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Leaf 1's answer is cached; leaf 2 is never asked about before the fault.
    let o = ocsp(&ocsp_url, &data, &work, &leaves[1].1);
    assert!(text(&o).contains(": good"), "{}", text(&o));

    // The kernel turns the filesystem read-only under the server.
    let device = mount.device();
    let o = run(
        "sh",
        &[
            "-c",
            &format!("echo 1 > /sys/fs/ext4/{device}/trigger_fs_error"),
        ],
    );
    assert!(o.status.success(), "trigger_fs_error: {}", text(&o));
    let probe = fs::write(data.join("probe"), b"x");
    assert!(
        probe.is_err(),
        "the filesystem is still writable after the error"
    );

    let a = issue(&https, &base, &admin, &csr_pem).await;
    assert_unavailable("issuance on a read-only filesystem", &a);
    let a = revoke(&https, &base, &admin, &leaves[1].0).await;
    assert_unavailable("revocation on a read-only filesystem", &a);
    // Twice more: the server does not wedge after the first failure.
    for _ in 0..2 {
        let a = issue(&https, &base, &admin, &csr_pem).await;
        assert_unavailable("issuance on a read-only filesystem", &a);
    }
    server.alive();

    // OCSP: cached good, revoked and an uncached good (a read) all answer; lookups work.
    let o = ocsp(&ocsp_url, &data, &work, &leaves[1].1);
    assert!(text(&o).contains(": good"), "cached: {}", text(&o));
    let o = ocsp(&ocsp_url, &data, &work, &leaves[0].1);
    assert!(text(&o).contains(": revoked"), "revoked: {}", text(&o));
    let o = ocsp(&ocsp_url, &data, &work, &leaves[2].1);
    assert!(text(&o).contains(": good"), "uncached: {}", text(&o));
    let r = https
        .get(server.url(&format!("/v1/certificates/{}", leaves[2].0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "lookup on a read-only filesystem");
    let r = https.get(server.url("/readyz")).send().await.unwrap();
    eprintln!("/readyz on a read-only filesystem: {}", r.status());

    // Recovery: an emergency read-only ext4 cannot be remounted read-write; stop, unmount,
    // check, mount, start.
    let o = run("mount", &["-o", "remount,rw", p(&mount.dir)]);
    eprintln!(
        "remount,rw after the error (expected to be refused): {}",
        o.status
    );
    stop(&mut server);
    let o = mount.unmount();
    assert!(o.status.success(), "umount: {}", text(&o));
    mount.mount_again();
    check_database(&data.join("signet.db"), &acknowledged);
    let (mut server, https) = start(tmp.path(), &data).await;
    let base = server.base();
    let a = issue(&https, &base, &admin, &csr_pem).await;
    assert_eq!(a.status, 201, "after recovery: {}", a.body);
    let a = revoke(&https, &base, &admin, &leaves[1].0).await;
    assert_eq!(a.status, 200, "after recovery: {}", a.body);
    let o = ocsp(&server.ocsp_url("/ocsp"), &data, &work, &leaves[0].1);
    assert!(text(&o).contains(": revoked"), "{}", text(&o));
    stop(&mut server);
}

#[test]
fn serve_on_a_read_only_data_directory_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = Mount::tmpfs(&tmp.path().join("mnt"), "16m");
    let data = mount.dir.join("data");
    // A complete directory (CA, database, admin token, provisioner), then stopped.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut server, _) = start(tmp.path(), &data).await;
        stop(&mut server);
    });
    mount.remount("ro");
    assert!(fs::write(data.join("probe"), b"x").is_err());

    let o = base_command()
        .args(["serve", "--dir", p(&data), "--responder-listen", "off"])
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&o);
    assert!(
        !o.status.success(),
        "serve started on a read-only directory:\n{all}"
    );
    assert!(!all.contains("is listening"), "{all}");
    let error = String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{all}"))
        .to_string();
    eprintln!("on a read-only data directory: {error}");
    assert!(
        error.contains("Read-only file system") && error.contains("signet.db"),
        "the message does not say read-only: {error}"
    );
    assert!(
        error.contains("SQLite must be able to write"),
        "the message does not say what SQLite needs: {error}"
    );

    mount.remount("rw");
    rt.block_on(async {
        let (mut server, _) = start(tmp.path(), &data).await;
        stop(&mut server);
    });
}
