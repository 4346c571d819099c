//! The runtime's public API against a real socket and data directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use conveyor_io_std::{Options, start};

fn options(dir: &std::path::Path, listen: SocketAddr) -> Options {
    Options {
        listen,
        data_dir: dir.join("data"),
        broker: conveyor_core::Config::default(),
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("a literal socket address")
}

#[test]
fn port_in_use_names_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind(any_port()).unwrap();
    let addr = taken.local_addr().unwrap();
    let e = start(options(tmp.path(), addr)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[test]
fn bad_data_dir_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let mut opts = options(tmp.path(), any_port());
    opts.data_dir = file.join("data");
    let e = start(opts).unwrap_err();
    assert!(e.to_string().contains("data directory"), "{e}");
}

#[test]
fn two_runtimes_cannot_share_a_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let first = start(options(tmp.path(), any_port())).unwrap();
    let e = start(options(tmp.path(), any_port())).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    first.shutdown().unwrap();
    // The lock goes with the runtime.
    start(options(tmp.path(), any_port()))
        .unwrap()
        .shutdown()
        .unwrap();
}

/// An ApiVersions v0 request (api key 18), correlation id 7, no client id.
const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

#[test]
fn serves_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let running = start(options(tmp.path(), any_port())).unwrap();
    let addr = running.local_addr();
    assert_ne!(addr.port(), 0);
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(&API_VERSIONS).unwrap();
    let mut len = [0u8; 4];
    client.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    client.read_exact(&mut body).unwrap();
    assert_eq!(body[..4], 7i32.to_be_bytes(), "correlation id");
    assert!(
        running
            .stats()
            .send_calls
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    let handle = running.shutdown_handle();
    std::thread::spawn(move || handle.shutdown());
    running.wait().unwrap();
    assert!(tmp.path().join("data/.kafka_cleanshutdown").exists());
    // The connection was closed by the shutdown.
    assert_eq!(client.read(&mut len).unwrap_or(0), 0);
}
