//! The `fangkong` command as a user runs it: a real process, real ports, real signals.
//!
//! PostgreSQL cases use `FANGKONG_TEST_POSTGRES_URL` (each in a schema of its own); without
//! it they say so and pass, except under `CI=true`, where a missing database fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fangkong");

fn fangkong(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("FANGKONG_DB").env_remove("FANGKONG_CONFIG").output().unwrap()
}

/// A running `fangkong serve|demo`, stopped with SIGTERM when dropped.
struct Running {
    child: Child,
    base_url: String,
    stdout_lines: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Running::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
        let child = Command::new(BIN)
            .args(args)
            .env_remove("FANGKONG_DB")
            .env_remove("FANGKONG_LISTEN")
            .env("FANGKONG_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // From here on `Drop` reaps the process, whatever happens.
        let mut running = Running { child, base_url: String::new(), stdout_lines: Vec::new() };
        let stdout = running.child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx
                .recv_timeout(remaining)
                .unwrap_or_else(|_| panic!("no listening line: {:?}", running.stdout_lines));
            running.stdout_lines.push(line.clone());
            if let Some(url) = line.strip_prefix("fangkong listening on ") {
                running.base_url = url.trim_end_matches('/').to_string();
                // Collect anything printed right after (the demo's instructions).
                while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
                    running.stdout_lines.push(line);
                }
                return running;
            }
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.base_url.strip_prefix("http://").unwrap(), path)
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        wait_with_timeout(&mut self.child, Duration::from_secs(20))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(host_port: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(host_port).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: {host_port}\r\nconnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// The body of a response that may be chunked (hyper chunks bodies of unknown length).
fn dechunk(body: &str) -> String {
    if !body.contains("\r\n") {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

fn postgres_url() -> Option<String> {
    match std::env::var("FANGKONG_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but FANGKONG_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("note: FANGKONG_TEST_POSTGRES_URL is not set; PostgreSQL CLI test did not run");
            None
        }
    }
}

/// A schema of the test's own in the test PostgreSQL, dropped at the end; the server under
/// test reaches it through a URL whose `search_path` points there.
struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    fn create(admin_url: &str) -> PgSchema {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("fk_cli_{}_{n}_{nanos}", std::process::id());
        run_sql(admin_url, &format!("CREATE SCHEMA {name}"));
        PgSchema { admin_url: admin_url.to_string(), name }
    }

    fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.admin_url, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        run_sql(&self.admin_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn run_sql(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    });
}

fn check_serving(server: &Running, store: &str) {
    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&dechunk(&body)).unwrap();
    assert_eq!(health["store"], store);

    let (status, body) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&dechunk(&body)).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    let (status, body) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("fangkong_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
        "{body}"
    );
    assert!(body.contains(&format!("backend=\"{store}\"")), "{body}");
}

// ---- arguments and failures ---------------------------------------------------------------

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["demo", "--help"],
        &["migrate", "--help"],
        &["bench", "--help"],
        &["bench", "store", "--help"],
    ] {
        let output = fangkong(args);
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage:"), "{args:?}");
    }
}

/// Runs a command expected to fail; returns its stderr after checking the exit code and
/// that the message is one line naming `fragment`.
fn check_failure(args: &[&str], code: i32, fragment: &str) -> String {
    let started = Instant::now();
    let output = fangkong(args);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(fragment), "{args:?}: {stderr:?} should mention {fragment:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "{args:?} fails fast");
    stderr
}

#[test]
fn bad_arguments_exit_2() {
    check_failure(&["serve", "--bogus"], 2, "--bogus");
    check_failure(&["bench", "store", "--rounds", "0"], 2, "--rounds");
    check_failure(&["frobnicate"], 2, "frobnicate");
}

#[test]
fn bad_databases_and_config_fail_fast_with_one_line() {
    for (args, fragment) in [
        (&["serve", "--db", "mysql://root@localhost/x"][..], "unsupported database \"mysql\""),
        (&["serve", "--db", "postgres://u@127.0.0.1:notaport/x"], "invalid database URL"),
        (&["serve", "--db", "postgres://nobody@127.0.0.1:1/x"], "PostgreSQL at 127.0.0.1:1/x"),
        (&["serve", "--db", "sqlite:///nonexistent/dir/fk.db"], "does not exist"),
        (&["serve", "--config", "/nonexistent/fangkong.toml"], "cannot read config file"),
        (&["migrate", "--db", "postgres://nobody@127.0.0.1:1/x"], "PostgreSQL at 127.0.0.1:1/x"),
        (&["serve", "--listen", "not-an-address"], "--listen"),
    ] {
        let stderr = check_failure(args, 1, fragment);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn an_unreadable_config_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fangkong.toml");
    std::fs::write(&path, "db = \"sqlite://x.db\"\nport = 8080\n").unwrap();
    let stderr = check_failure(&["serve", "--config", path.to_str().unwrap()], 1, "line 2");
    assert!(stderr.contains("port"), "{stderr}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("fk.db").display());
    check_failure(&["serve", "--db", &db, "--listen", &address], 1, &format!("cannot listen on {address}"));
}

// ---- serving ------------------------------------------------------------------------------

#[test]
fn serve_on_sqlite_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("fk.db").display());
    let server = Running::start(&["serve", "--db", &db, "--listen", "127.0.0.1:0"]);
    check_serving(&server, "sqlite");
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        !dir.path().join("fk.db-wal").exists() || std::fs::metadata(dir.path().join("fk.db-wal")).unwrap().len() == 0,
        "the WAL was checkpointed at shutdown"
    );
}

#[test]
fn serve_on_postgres_answers_and_stops_cleanly_on_sigterm() {
    let Some(admin_url) = postgres_url() else { return };
    let schema = PgSchema::create(&admin_url);
    let server = Running::start(&["serve", "--db", &schema.url(), "--listen", "127.0.0.1:0"]);
    check_serving(&server, "postgres");
    assert!(server.stop().success());
}

#[test]
fn serve_reads_the_config_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fangkong.toml");
    let file_db = dir.path().join("from-file.db");
    std::fs::write(&config, format!("db = \"sqlite://{}\"\nlisten = \"127.0.0.1:1\"\n", file_db.display())).unwrap();
    // The file names the database; the environment overrides the file's (unusable) port.
    let server = Running::start_with_env(
        &["serve"],
        &[("FANGKONG_CONFIG", config.to_str().unwrap()), ("FANGKONG_LISTEN", "127.0.0.1:0")],
    );
    check_serving(&server, "sqlite");
    assert!(server.stop().success());
    assert!(file_db.exists(), "the file's db was used");
}

#[test]
fn demo_serves_on_a_fresh_temporary_directory_and_removes_it() {
    let server = Running::start(&["demo", "--listen", "127.0.0.1:0"]);
    let data_line =
        server.stdout_lines.iter().find_map(|l| l.strip_prefix("Fangkong demo: data in ")).unwrap().to_string();
    assert!(std::path::Path::new(&data_line).join("fangkong.db").exists());
    assert!(server.stdout_lines.iter().any(|l| l.starts_with("Open http://")), "{:?}", server.stdout_lines);
    check_serving(&server, "sqlite");
    let (status, body) = server.get("/api/v1/codes/incident_type/010301");
    assert_eq!(status, 200);
    assert!(dechunk(&body).contains("抢劫"));
    assert!(server.stop().success());
    assert!(!std::path::Path::new(&data_line).exists(), "the temporary directory is removed on exit");
}

#[test]
fn demo_keeps_a_given_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let server = Running::start(&["demo", "--data-dir", data_dir.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(server.stop().success());
    assert!(data_dir.join("fangkong.db").exists());
}

// ---- migrate and bench --------------------------------------------------------------------

#[test]
fn migrate_applies_once_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("fk.db").display());
    let first = fangkong(&["migrate", "--db", &db]);
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied 0001_foundation"));
    let second = fangkong(&["migrate", "--db", &db]);
    assert!(!String::from_utf8_lossy(&second.stdout).contains("applied"));
    let status = fangkong(&["migrate", "--db", &db, "--status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("schema is up to date"));
}

#[test]
fn migrate_works_on_postgres() {
    let Some(admin_url) = postgres_url() else { return };
    let schema = PgSchema::create(&admin_url);
    let pending = fangkong(&["migrate", "--db", &schema.url(), "--status"]);
    assert!(String::from_utf8_lossy(&pending.stdout).contains("pending 0001_foundation"), "{pending:?}");
    let applied = fangkong(&["migrate", "--db", &schema.url()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(String::from_utf8_lossy(&applied.stdout).contains("applied 0001_foundation"));
}

#[test]
fn bench_store_prints_json_lines_for_each_backend() {
    let postgres = postgres_url();
    let mut command = Command::new(BIN);
    command.args(["bench", "store", "--quick"]).env_remove("FANGKONG_BENCH_POSTGRES_URL");
    if let Some(url) = &postgres {
        command.args(["--postgres", url]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sqlite_single = lines.iter().find(|l| l["metric"] == "sqlite.single_insert").expect("sqlite single insert");
    assert_eq!(sqlite_single["unit"], "rows/s");
    assert!(lines.iter().any(|l| l["metric"] == "sqlite.batch_insert"));
    if postgres.is_some() {
        assert_eq!(sqlite_single["peer"], "postgres");
        assert!(sqlite_single["ratio"].as_f64().unwrap() > 0.0);
        assert!(lines.iter().any(|l| l["metric"] == "postgres.batch_insert"));
    }
    let _ = std::io::stdout().flush();
}
