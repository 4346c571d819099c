//! Kafka requests written by hand, for tests that send what no client would.
//!
//! Deliberately independent of the broker's codec (`kafka-protocol`): if both
//! sides shared a bug, a round trip would not see it. Only the few
//! non-flexible versions the tests need are here: request header v1 (i32
//! length, i16 api key, i16 version, i32 correlation id, nullable string
//! client id), response header v0 (correlation id), ApiVersions v0, Metadata
//! v4, Produce v3 and a RecordBatch v2 built with CRC-32C.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// API keys used by the tests.
pub mod api {
    /// Produce.
    pub const PRODUCE: i16 = 0;
    /// Fetch.
    pub const FETCH: i16 = 1;
    /// ListOffsets.
    pub const LIST_OFFSETS: i16 = 2;
    /// Metadata.
    pub const METADATA: i16 = 3;
    /// FindCoordinator.
    pub const FIND_COORDINATOR: i16 = 10;
    /// ApiVersions.
    pub const API_VERSIONS: i16 = 18;
}

/// Kafka error codes the tests look for.
pub mod error {
    /// CORRUPT_MESSAGE.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
}

/// A big-endian Kafka encoder.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    /// Bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }
    /// int8.
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// int16.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// int32.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// uint32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// int64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Raw bytes, no length.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// STRING: i16 length then UTF-8.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.i16(i16::try_from(s.len()).expect("string fits i16"));
        self.raw(s.as_bytes())
    }
    /// NULLABLE_STRING: -1 for null.
    pub fn nullable_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    /// BYTES / RECORDS: i32 length then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.i32(i32::try_from(b.len()).expect("bytes fit i32"));
        self.raw(b)
    }
    /// Zigzag varint (records).
    pub fn varint(&mut self, v: i32) -> &mut Self {
        self.uvarint(u64::from(((v << 1) ^ (v >> 31)) as u32))
    }
    /// Zigzag varlong (records).
    pub fn varlong(&mut self, v: i64) -> &mut Self {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64)
    }
    /// Unsigned varint.
    pub fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
}

/// A big-endian Kafka decoder; `None` when the bytes run out.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    /// int16.
    pub fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    /// int32.
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    /// int64.
    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    /// STRING.
    pub fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    /// NULLABLE_STRING.
    pub fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok().map(Some)
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// A whole request frame: i32 length, then request header v1 (api key,
/// version, correlation id, nullable client id), then `body`.
pub fn request(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut payload = Writer::new();
    payload
        .i16(api_key)
        .i16(api_version)
        .i32(correlation_id)
        .nullable_string(client_id)
        .raw(body);
    let mut frame = Writer::new();
    frame.bytes(&payload.buf);
    frame.buf
}

/// One record of a hand-built batch.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Key (None: null).
    pub key: Option<&'a [u8]>,
    /// Value (None: null).
    pub value: Option<&'a [u8]>,
}

/// Offsets of RecordBatch v2 fields (see KAFKA-NOTES.md).
pub mod batch {
    /// batchLength: i32, bytes after this field.
    pub const LENGTH: usize = 8;
    /// crc: u32, CRC-32C of bytes `ATTRIBUTES..`.
    pub const CRC: usize = 17;
    /// attributes: i16; CRC coverage starts here.
    pub const ATTRIBUTES: usize = 21;
    /// records start here.
    pub const RECORDS: usize = 61;
}

/// An uncompressed RecordBatch v2 (magic 2) with base offset 0, no producer
/// id, all records at `timestamp`, and a correct CRC-32C.
pub fn record_batch(records: &[RawRecord<'_>], timestamp: i64) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let count = i32::try_from(records.len()).expect("record count fits i32");
    let mut body = Writer::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = Writer::new();
        rec.i8(0) // attributes
            .varlong(0) // timestamp delta
            .varint(i32::try_from(i).expect("offset delta fits i32"));
        for field in [r.key, r.value] {
            match field {
                Some(b) => rec.varint(i32::try_from(b.len()).expect("fits")).raw(b),
                None => rec.varint(-1),
            };
        }
        rec.varint(0); // no headers
        body.varint(i32::try_from(rec.buf.len()).expect("record fits"))
            .raw(&rec.buf);
    }
    let mut w = Writer::new();
    w.i64(0) // base offset
        .i32(0) // batch length, patched below
        .i32(-1) // partition leader epoch
        .i8(2) // magic
        .u32(0) // crc, patched below
        .i16(0) // attributes: no codec, CreateTime
        .i32(count - 1) // last offset delta
        .i64(timestamp) // base timestamp
        .i64(timestamp) // max timestamp
        .i64(-1) // producer id
        .i16(-1) // producer epoch
        .i32(-1) // base sequence
        .i32(count)
        .raw(&body.buf);
    let mut buf = w.buf;
    let length = i32::try_from(buf.len() - batch::LENGTH - 4).expect("batch fits");
    buf[batch::LENGTH..batch::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&buf[batch::ATTRIBUTES..]);
    buf[batch::CRC..batch::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// A Produce v3 body: no transactional id, `acks`, a 10 s timeout, one
/// topic with one partition holding `records`.
pub fn produce_v3_body(topic: &str, partition: i32, acks: i16, records: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.nullable_string(None)
        .i16(acks)
        .i32(10_000)
        .i32(1) // topics
        .string(topic)
        .i32(1) // partitions
        .i32(partition)
        .bytes(records);
    w.buf
}

/// A Metadata v4 body asking for `topics`, allowing auto-creation.
pub fn metadata_v4_body(topics: &[&str]) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(i32::try_from(topics.len()).expect("fits"));
    for t in topics {
        w.string(t);
    }
    w.i8(1); // allow_auto_topic_creation
    w.buf
}

/// The controller id of a Metadata v4 response body (after the
/// correlation id): -1 when none is known.
pub fn parse_metadata_v4_controller(body: &[u8]) -> Option<i32> {
    let mut r = Reader::new(body);
    r.i32()?; // throttle_time_ms
    for _ in 0..r.i32()? {
        r.i32()?; // node_id
        r.string()?; // host
        r.i32()?; // port
        r.nullable_string()?; // rack
    }
    r.nullable_string()?; // cluster_id
    r.i32()
}

/// The active controller as the broker at `addr` names it in Metadata
/// (v4), or -1.
pub fn controller_id(addr: SocketAddr) -> i32 {
    let frame = request(
        api::METADATA,
        4,
        7,
        Some("conveyor-tests"),
        &metadata_v4_body(&[]),
    );
    let mut conn = RawConn::connect(addr);
    conn.round_trip(&frame, 7)
        .ok()
        .and_then(|body| parse_metadata_v4_controller(&body))
        .unwrap_or(-1)
}

/// The coordinator of consumer group `group` as the broker at `addr`
/// names it (FindCoordinator v1), or -1 (an error, such as
/// COORDINATOR_NOT_AVAILABLE while there is none).
pub fn coordinator_id(addr: SocketAddr, group: &str) -> i32 {
    let mut body = Writer::new();
    body.string(group).i8(0); // key, key_type: a group
    let frame = request(
        api::FIND_COORDINATOR,
        1,
        9,
        Some("conveyor-tests"),
        &body.buf,
    );
    let mut conn = RawConn::connect(addr);
    let parsed = conn.round_trip(&frame, 9).ok().and_then(|body| {
        let mut r = Reader::new(&body);
        r.i32()?; // throttle_time_ms
        let error = r.i16()?;
        r.nullable_string()?; // error_message
        let node = r.i32()?;
        Some(if error == 0 { node } else { -1 })
    });
    parsed.unwrap_or(-1)
}

/// The one partition result of a Produce v3 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    /// Topic name as answered.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Kafka error code.
    pub error_code: i16,
    /// Offset of the batch's first record (-1 on error).
    pub base_offset: i64,
}

/// Parses a Produce v3 response body (after the correlation id) holding
/// one topic and one partition.
pub fn parse_produce_v3(body: &[u8]) -> Option<ProducePartition> {
    let mut r = Reader::new(body);
    if r.i32()? != 1 {
        return None;
    }
    let topic = r.string()?;
    if r.i32()? != 1 {
        return None;
    }
    let partition = r.i32()?;
    let error_code = r.i16()?;
    let base_offset = r.i64()?;
    let _log_append_time = r.i64()?;
    let _throttle_time = r.i32()?;
    Some(ProducePartition {
        topic,
        partition,
        error_code,
        base_offset,
    })
}

/// An ApiVersions response (the v0 layout, which is also what a broker
/// answers to a version it does not support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions {
    /// Kafka error code.
    pub error_code: i16,
    /// (api key, min version, max version).
    pub keys: Vec<(i16, i16, i16)>,
}

impl ApiVersions {
    /// The (min, max) versions advertised for `key`.
    pub fn range(&self, key: i16) -> Option<(i16, i16)> {
        self.keys.iter().find(|k| k.0 == key).map(|k| (k.1, k.2))
    }
}

/// Parses an ApiVersions v0 response body (after the correlation id).
pub fn parse_api_versions_v0(body: &[u8]) -> Option<ApiVersions> {
    let mut r = Reader::new(body);
    let error_code = r.i16()?;
    let n = r.i32()?;
    let mut keys = Vec::new();
    for _ in 0..n.clamp(0, 10_000) {
        keys.push((r.i16()?, r.i16()?, r.i16()?));
    }
    (r.remaining() == 0).then_some(ApiVersions { error_code, keys })
}

/// How long a raw connection waits for any one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A raw TCP connection to the broker with bounded reads and writes.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
}

/// How a connection ended while waiting for it to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The broker closed it (EOF or reset), after sending these bytes.
    Closed(Vec<u8>),
    /// Still open when the wait ended, after sending these bytes.
    StillOpen(Vec<u8>),
}

impl RawConn {
    /// Connects with bounded timeouts.
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set_read_timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set_write_timeout");
        stream.set_nodelay(true).expect("set_nodelay");
        RawConn { stream }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Half-closes the write side: the broker sees EOF.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    /// Reads one response frame and returns (correlation id, body after it).
    /// Refuses frames over 64 MiB.
    pub fn read_response(&mut self) -> io::Result<(i32, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(4..=64 << 20).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response frame length {len}"),
            ));
        }
        let mut frame = vec![0u8; len as usize];
        self.stream.read_exact(&mut frame)?;
        let correlation_id = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
        Ok((correlation_id, frame.split_off(4)))
    }

    /// Sends a request and reads its response body, checking the
    /// correlation id.
    pub fn round_trip(&mut self, frame: &[u8], correlation_id: i32) -> io::Result<Vec<u8>> {
        self.send(frame)?;
        let (got, body) = self.read_response()?;
        if got != correlation_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("correlation id {got}, expected {correlation_id}"),
            ));
        }
        Ok(body)
    }

    /// Reads until the broker closes the connection or `timeout` passes.
    pub fn wait_closed(&mut self, timeout: Duration) -> Closed {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Closed::StillOpen(seen);
            };
            let left = left.max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return Closed::Closed(seen),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // Reset, aborted, broken pipe: closed by the broker.
                Err(_) => return Closed::Closed(seen),
            }
        }
    }
}

/// Sends ApiVersions v0 on a new connection and returns the parsed answer;
/// panics if there is none. Used to check the broker still serves after a
/// bad connection.
pub fn api_versions(addr: SocketAddr) -> ApiVersions {
    let mut conn = RawConn::connect(addr);
    let body = conn
        .round_trip(
            &request(api::API_VERSIONS, 0, 4242, Some("conveyor-tests"), &[]),
            4242,
        )
        .unwrap_or_else(|e| panic!("ApiVersions v0 on a fresh connection: {e}"));
    parse_api_versions_v0(&body)
        .unwrap_or_else(|| panic!("unparseable ApiVersions v0 response: {body:02x?}"))
}

/// Checks the broker at `addr` answers ApiVersions v0 correctly on a fresh
/// connection: no error, Produce from version 0, Fetch, Metadata, ApiVersions.
pub fn assert_serving(addr: SocketAddr) {
    let v = api_versions(addr);
    assert_eq!(v.error_code, 0, "ApiVersions v0 error: {v:?}");
    for key in [
        api::PRODUCE,
        api::FETCH,
        api::LIST_OFFSETS,
        api::METADATA,
        api::API_VERSIONS,
    ] {
        assert!(
            v.range(key).is_some(),
            "ApiVersions does not list api key {key}: {v:?}"
        );
    }
    assert_eq!(
        v.range(api::PRODUCE).map(|r| r.0),
        Some(0),
        "Produce must be advertised from version 0 (librdkafka turns compression off otherwise)"
    );
}
