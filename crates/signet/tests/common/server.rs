//! A `signet serve` or `signet responder` process under test: started on port 0 with
//! `--ready-file`, so the harness learns the ports the server bound (no port is picked
//! beforehand and released), waited for with a deadline, killed when dropped.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{base_command, p};

/// How long a server may take to come up (it may first create a CA and migrate a database).
pub const STARTUP: Duration = Duration::from_secs(90);
/// How long a server may take to exit after SIGTERM when it has nothing in flight.
pub const PROMPT_EXIT: Duration = Duration::from_secs(10);
/// How often conditions are polled while waiting for them (always with a deadline).
pub const POLL: Duration = Duration::from_millis(20);

/// The addresses a server wrote to its `--ready-file` once every socket was bound.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The API's address (`signet serve`).
    pub api: Option<SocketAddr>,
    /// The CA URL the server derived from its address or took from `[server] url`.
    pub url: Option<String>,
    /// The responder's address, unless it is off.
    pub responder: Option<SocketAddr>,
}

impl Ready {
    fn parse(text: &str) -> Ready {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("the ready file is not JSON ({e}): {text}"));
        let addr = |key: &str| {
            v[key].as_str().map(|s| {
                s.parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("{key}: {e}"))
            })
        };
        Ready {
            api: addr("api"),
            url: v["url"].as_str().map(str::to_string),
            responder: addr("responder"),
        }
    }
}

/// A running `signet` server process, killed (and reaped) when dropped.
pub struct Server {
    pub child: Child,
    log: PathBuf,
    ready_file: PathBuf,
    ready: Option<Ready>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has(args: &[&str], flag: &str) -> bool {
    args.iter()
        .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
}

impl Server {
    /// Spawns `signet serve ARGS` with `env`, adding `--init` (without `--config`),
    /// `--listen 127.0.0.1:0` and `--responder-listen 127.0.0.1:0` unless ARGS give them,
    /// and `--ready-file`. Its
    /// output goes to `log_dir/serve-N.log`. Does not wait: see [`Server::ready`].
    pub fn spawn(log_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        // A data directory that does not exist yet is made only when asked.
        if !has(args, "--config") && !has(args, "--init") {
            all.push("--init");
        }
        if !has(args, "--listen") {
            all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        if !has(args, "--responder-listen") {
            all.extend_from_slice(&["--responder-listen", "127.0.0.1:0"]);
        }
        Server::spawn_command(log_dir, "serve", env, &all)
    }

    /// Spawns `signet responder ARGS` (the standalone responder) with `env`, adding
    /// `--listen 127.0.0.1:0` unless ARGS give it, and `--ready-file`. Does not wait.
    pub fn spawn_responder(log_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut all = vec!["responder"];
        all.extend_from_slice(args);
        if !has(args, "--listen") {
            all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        Server::spawn_command(log_dir, "responder", env, &all)
    }

    /// Spawns `signet ARGS --ready-file …` exactly as given (ARGS start with `serve` or
    /// `responder` and name every address), e.g. to take the responder's address from the
    /// configuration. Does not wait.
    pub fn spawn_with(log_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn_command(
            log_dir,
            args.first().copied().unwrap_or("signet"),
            env,
            args,
        )
    }

    fn spawn_command(log_dir: &Path, tag: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let log = log_dir.join(format!("{tag}-{n}.log"));
        let ready_file = log_dir.join(format!("{tag}-{n}.ready.json"));
        let _ = fs::remove_file(&ready_file);
        let out = fs::File::create(&log).unwrap();
        let mut cmd = base_command();
        cmd.args(args)
            .args(["--ready-file", p(&ready_file)])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server {
            child: cmd.spawn().unwrap(),
            log,
            ready_file,
            ready: None,
        }
    }

    /// [`Server::spawn`], then [`Server::ready`].
    pub async fn start(log_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut server = Server::spawn(log_dir, env, args);
        server.ready().await;
        server
    }

    /// [`Server::spawn`], then [`Server::ready_blocking`], for tests without a runtime.
    pub fn start_blocking(log_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut server = Server::spawn(log_dir, env, args);
        server.ready_blocking();
        server
    }

    /// One look at the ready file: true once it is there (and parsed). Panics with the log
    /// if the process has exited.
    fn poll_ready(&mut self, deadline: Instant) -> bool {
        if self.ready.is_some() {
            return true;
        }
        if let Ok(text) = fs::read_to_string(&self.ready_file) {
            self.ready = Some(Ready::parse(&text));
            return true;
        }
        self.alive();
        assert!(
            Instant::now() < deadline,
            "not ready (no {}) within {STARTUP:?}:\n{}",
            self.ready_file.display(),
            self.log_tail()
        );
        false
    }

    /// Waits (at most [`STARTUP`]) until the server has written its ready file, that is
    /// until every socket is bound; connections made from then on are accepted.
    pub async fn ready(&mut self) -> &Ready {
        let deadline = Instant::now() + STARTUP;
        while !self.poll_ready(deadline) {
            tokio::time::sleep(POLL).await;
        }
        self.ready.as_ref().unwrap()
    }

    /// [`Server::ready`] for tests without a runtime.
    pub fn ready_blocking(&mut self) -> &Ready {
        let deadline = Instant::now() + STARTUP;
        while !self.poll_ready(deadline) {
            std::thread::sleep(POLL);
        }
        self.ready.as_ref().unwrap()
    }

    /// Waits (at most [`STARTUP`]) until the server is ready (`Ok`) or has exited
    /// (`Err(status)`), for tests of start-ups that may be refused.
    pub fn ready_or_exit_blocking(&mut self) -> Result<&Ready, ExitStatus> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.ready.is_none()
                && let Ok(text) = fs::read_to_string(&self.ready_file)
            {
                self.ready = Some(Ready::parse(&text));
            }
            if self.ready.is_some() {
                break;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(status);
            }
            assert!(
                Instant::now() < deadline,
                "neither ready nor exited within {STARTUP:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL);
        }
        Ok(self.ready.as_ref().expect("set above"))
    }

    fn addrs(&self) -> &Ready {
        self.ready
            .as_ref()
            .expect("the server is not ready yet: call ready() first")
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        self.addrs().api.expect("no API address").port()
    }

    /// The responder's port.
    pub fn ocsp_port(&self) -> u16 {
        self.addrs().responder.expect("the responder is off").port()
    }

    /// The API's `host:port`.
    pub fn addr(&self) -> String {
        self.addrs().api.expect("no API address").to_string()
    }

    /// The CA URL (the tokens' audience), as the server reported it.
    pub fn base(&self) -> String {
        self.addrs().url.clone().expect("no CA URL")
    }

    /// `base()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The responder's URL for `path` (plain HTTP).
    pub fn ocsp_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ocsp_port())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 200 lines of the log, for panic messages (a trace-level log is huge).
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(200)..].join("\n")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Panics with the log if the process has exited.
    pub fn alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the server exited early ({status}):\n{}", self.log_tail());
        }
    }

    /// Polls `url` until it answers 2xx (at most [`STARTUP`]); panics with the server's log
    /// if the server exits or does not come up in time.
    pub async fn wait_for(&mut self, client: &reqwest::Client, url: &str) -> reqwest::Response {
        let deadline = Instant::now() + STARTUP;
        loop {
            self.alive();
            match client.get(url).send().await {
                Ok(resp) if resp.status().is_success() => return resp,
                Ok(resp) if Instant::now() > deadline => {
                    panic!("{url} answered {}:\n{}", resp.status(), self.log_tail())
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("{url} did not answer: {e:?}\n{}", self.log_tail())
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the API's `/readyz` answers 200 and, if the responder is on, until it
    /// serves the issuing CRL.
    pub async fn wait_ready(&mut self, https: &reqwest::Client) {
        self.wait_for(https, &self.url("/readyz")).await;
        if self.addrs().responder.is_some() {
            let crl = self.ocsp_url("/crl/issuing.crl");
            self.wait_for(https, &crl).await;
        }
    }

    /// Sends `signal` (a name `kill` knows: TERM, KILL, HUP, STOP...).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(kill.success(), "kill -{signal} {pid}");
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait (at most [`PROMPT_EXIT`]) for the exit status. Async, so that
    /// the test's HTTP clients keep running and answer the server's HTTP/2 GOAWAY and PING
    /// as it drains.
    pub async fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < PROMPT_EXIT,
                "the server did not exit within {PROMPT_EXIT:?} of SIGTERM:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM and [`Server::wait_exit`] with [`PROMPT_EXIT`], for tests without a runtime.
    pub fn terminate_blocking(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(PROMPT_EXIT)
    }

    /// Waits at most `limit` for the process to exit, panicking with its log if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// A child process whose stdout and stderr are read as they come (by two threads), so a
/// test can wait for a line it prints (a handshake done, a message received) instead of
/// sleeping. Killed when dropped.
pub struct Watched {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Watched {
    /// Spawns `cmd` with stdin piped and stdout and stderr read by the watcher.
    pub fn spawn(cmd: &mut Command) -> Watched {
        use std::io::Read;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let mut readers = Vec::new();
        let mut pipe = |stream: Option<Box<dyn Read + Send>>| {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            if let Some(mut stream) = stream {
                let sink = buf.clone();
                readers.push(std::thread::spawn(move || {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                }));
            }
            buf
        };
        let stdout = pipe(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let stderr = pipe(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        Watched {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Everything printed so far, stdout then stderr.
    pub fn printed(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Waits (at most `limit`) until the output holds `needle`; false if the process exits
    /// or the time runs out first (the caller's assertion then says which).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> bool {
        self.wait_for_any(&[needle], limit)
    }

    /// As [`Watched::wait_for`], for any of `needles`.
    pub fn wait_for_any(&mut self, needles: &[&str], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let seen = |w: &Watched| {
            let printed = w.printed();
            needles.iter().any(|n| printed.contains(n))
        };
        loop {
            if seen(self) {
                return true;
            }
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                // One last look: the output may have arrived with the exit.
                return seen(self);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The process's stdin, until [`Watched::close_stdin`].
    pub fn stdin(&mut self) -> &mut std::process::ChildStdin {
        self.child.stdin.as_mut().expect("stdin already closed")
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits at most `limit` for the process to exit, kills it if it has not, and returns
    /// its status and everything it printed.
    pub fn finish(mut self, limit: Duration) -> std::process::Output {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        std::process::Output {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
