//! The `conveyor` binary's command line: help, configuration errors and
//! startup failures, with their exit codes.

use std::net::TcpListener;
use std::process::{Command, Output};

fn conveyor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary cargo built runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one `error: ...` line, whatever else was logged.
fn error_line(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<_> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "one error line in:\n{err}");
    lines[0].to_owned()
}

#[test]
fn help_documents_every_flag() {
    let o = conveyor(&["--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("serve"));
    let o = conveyor(&["serve", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--config", "--listen", "--data-dir", "--runtime", "--set"] {
        assert!(help.contains(flag), "{flag} in:\n{help}");
    }
}

#[test]
fn unknown_key_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("server.properties");
    std::fs::write(&file, "num.partitions=2\nno.such.key=1\n").unwrap();
    let o = conveyor(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let line = error_line(&o);
    assert!(
        line.contains(":2:") && line.contains("no.such.key"),
        "{line}"
    );

    let o = conveyor(&["serve", "--set", "num.partitions=none"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(error_line(&o).contains("num.partitions"));
}

#[test]
fn unknown_runtime_lists_the_valid_ones() {
    let o = conveyor(&["serve", "--runtime", "fibers"]);
    assert_eq!(o.status.code(), Some(2));
    let line = error_line(&o);
    assert!(
        line.contains("fibers") && line.contains("valid: threads, mio, tokio, smol"),
        "{line}"
    );
}

#[test]
fn port_in_use_is_a_runtime_error_naming_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tmp.path().join("data");
    let o = conveyor(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(error_line(&o).contains(&addr));
}

#[test]
fn unusable_data_dir_is_a_runtime_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let data = file.join("data");
    let o = conveyor(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(error_line(&o).contains("data directory"));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            // Not the default port, which another test may hold.
            "--set",
            "metrics.listen=127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait until it serves, so the signal finds the handler in place.
    assert!(lines.any(|l| l.unwrap().contains("serving")));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Keep draining stderr so the child never blocks on a full pipe.
    for _ in lines {}
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(data.join(".kafka_cleanshutdown").exists());
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tmp.path().join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(["--log-format", "json", "serve", "--listen", &addr])
        .args(["--data-dir", data.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = logs
        .iter()
        .find(|v| v["message"] == "starting conveyor 0.1.0")
        .unwrap_or_else(|| panic!("the start line in:\n{err}"));
    assert_eq!(start["level"], "INFO");
    assert_eq!(
        start["listen"],
        addr.as_str(),
        "fields are keys of their own"
    );
    assert!(start["timestamp"].is_string());
    // The one-line error for people stays as it is.
    assert!(error_line(&o).contains(&addr));
}
