//! The embedding example (`examples/custom_server.rs`) serves real Kafka
//! requests: built into this test, started on 127.0.0.1:0 over a temporary
//! directory, asked ApiVersions and Metadata with raw bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

#[path = "../examples/custom_server.rs"]
mod custom_server;

fn round_trip(conn: &mut TcpStream, frame: &[u8]) -> Vec<u8> {
    conn.write_all(frame).unwrap();
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).unwrap();
    body
}

#[test]
fn the_custom_server_answers_api_versions_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tmp.path().join("data");
    let server = std::thread::spawn(move || custom_server::serve(listener, &dir, Some(1)));

    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // ApiVersions v0 (api key 18), correlation id 7, no client id.
    let body = round_trip(
        &mut conn,
        &[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff],
    );
    assert_eq!(body[..4], 7i32.to_be_bytes(), "correlation id");
    assert_eq!(body[4..6], [0, 0], "error code");
    // Metadata v1 (api key 3) for all topics (null array), correlation id 8.
    let body = round_trip(
        &mut conn,
        &[
            0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    assert_eq!(body[..4], 8i32.to_be_bytes(), "correlation id");
    // One broker: node id, then host = our address.
    let brokers = i32::from_be_bytes(body[4..8].try_into().unwrap());
    assert_eq!(brokers, 1, "one broker in {body:02x?}");
    let host_len = u16::from_be_bytes(body[12..14].try_into().unwrap()) as usize;
    assert_eq!(&body[14..14 + host_len], b"127.0.0.1");
    let port = i32::from_be_bytes(body[14 + host_len..18 + host_len].try_into().unwrap());
    assert_eq!(port, i32::from(addr.port()));
    drop(conn);

    // One connection served: the broker shuts down cleanly.
    server.join().unwrap().unwrap();
    assert!(tmp.path().join("data/.kafka_cleanshutdown").exists());
}
