//! Produce versions 0–2 (message formats v0 and v1), which the broker
//! advertises but does not accept: librdkafka disables compression unless
//! Produce is advertised from version 0. Such a request gets
//! UNSUPPORTED_VERSION for every partition it names, so an old client reads
//! a clear error rather than a closed connection. `kafka-protocol` decodes
//! Produce only from version 3, so these few fields are read by hand.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// The answer to a Produce v0–2 request as a whole frame: `Ok(None)` for
/// acks 0 (no answer is due), `Err` when the request is malformed (the
/// broker closes the connection).
pub fn answer(version: i16, correlation_id: i32, mut body: Bytes) -> Result<Option<Bytes>, ()> {
    let acks = get_i16(&mut body)?;
    let _timeout = get_i32(&mut body)?;
    let topic_count = get_count(&mut body)?;
    let mut topics = Vec::with_capacity(topic_count.min(1024));
    for _ in 0..topic_count {
        let name = get_string(&mut body)?;
        let partition_count = get_count(&mut body)?;
        let mut partitions = Vec::with_capacity(partition_count.min(1024));
        for _ in 0..partition_count {
            partitions.push(get_i32(&mut body)?);
            let records = get_i32(&mut body)?;
            skip(&mut body, records.max(0) as usize)?;
        }
        topics.push((name, partitions));
    }
    if acks == 0 {
        return Ok(None);
    }
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i32(topics.len() as i32);
    for (name, partitions) in &topics {
        out.put_i16(name.len() as i16);
        out.put_slice(name);
        out.put_i32(partitions.len() as i32);
        for &p in partitions {
            out.put_i32(p);
            out.put_i16(UNSUPPORTED_VERSION);
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Some(out.freeze()))
}

fn get_i16(b: &mut Bytes) -> Result<i16, ()> {
    b.try_get_i16().map_err(|_| ())
}

fn get_i32(b: &mut Bytes) -> Result<i32, ()> {
    b.try_get_i32().map_err(|_| ())
}

fn get_count(b: &mut Bytes) -> Result<usize, ()> {
    let n = get_i32(b)?;
    usize::try_from(n).map_err(|_| ())
}

fn get_string(b: &mut Bytes) -> Result<Bytes, ()> {
    let n = get_i16(b)?;
    let n = usize::try_from(n).map_err(|_| ())?;
    if b.len() < n {
        return Err(());
    }
    Ok(b.split_to(n))
}

fn skip(b: &mut Bytes, n: usize) -> Result<(), ()> {
    if b.len() < n {
        return Err(());
    }
    b.advance(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_partition_with_unsupported_version() {
        let mut req = BytesMut::new();
        req.put_i16(1); // acks
        req.put_i32(1000);
        req.put_i32(1);
        req.put_i16(1);
        req.put_slice(b"t");
        req.put_i32(2);
        for p in [0, 1] {
            req.put_i32(p);
            req.put_i32(3);
            req.put_slice(b"abc");
        }
        let frame = answer(2, 9, req.freeze()).unwrap().unwrap();
        // length, correlation, 1 topic "t", 2 partitions × (4+2+8+8), throttle
        assert_eq!(frame.len(), 4 + 4 + 4 + 3 + 4 + 2 * 22 + 4);
        assert_eq!(&frame[4..8], &9i32.to_be_bytes());
        assert_eq!(&frame[19..23], &0i32.to_be_bytes()); // partition 0
        assert_eq!(&frame[23..25], &35i16.to_be_bytes());
        assert!(answer(2, 9, Bytes::from_static(&[0, 1, 0])).is_err());
    }
}
