//! What a topic's settings ask of a produced batch before it is appended,
//! in the order Kafka's `LogValidator` checks them: every record of a
//! compacted topic has a key; CreateTime timestamps lie within
//! `message.timestamp.before.max.ms` / `after.max.ms` of the broker's clock;
//! and a `compression.type` other than `producer` rewrites the batch in that
//! codec. A batch that needs none of this is passed through untouched
//! without looking past its header.

use bytes::Bytes;

use super::batch::{BatchHeader, HEADER_LEN};
use super::codec::Codec;
use super::records::{self, KEYLESS_ON_COMPACTED, Rebuild};
use crate::config::{CleanupPolicy, TimestampType, TopicConfig};

/// Kafka's INVALID_RECORD.
const INVALID_RECORD: i16 = 87;
/// Kafka's INVALID_TIMESTAMP.
const INVALID_TIMESTAMP: i16 = 32;
/// Kafka's CORRUPT_MESSAGE.
const CORRUPT_MESSAGE: i16 = 2;
/// Kafka's MESSAGE_TOO_LARGE.
const MESSAGE_TOO_LARGE: i16 = 10;
/// Record errors listed in a refusal's message (Kafka shows three).
const LISTED: usize = 3;

/// A batch refused, with Kafka's error code, a message, and the records
/// at fault (their index in the batch and why) for Produce v8+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Kafka's error code.
    pub code: i16,
    /// The partition's error message.
    pub message: String,
    /// `(index in the batch, message)` per record at fault.
    pub record_errors: Vec<(i32, String)>,
}

impl Refusal {
    /// A refusal with only an error code.
    pub fn code(code: i16) -> Self {
        Self::whole(code, String::new())
    }

    fn whole(code: i16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }
}

/// Apply `config` to a validated client batch: the batch to append (the
/// same bytes, or rewritten in the topic's codec) and its header. `now_ms`
/// is the broker's wall clock; `limit` bounds the decompressed records.
pub fn apply(
    batch: Bytes,
    header: BatchHeader,
    config: &TopicConfig,
    now_ms: i64,
    limit: usize,
) -> Result<(Bytes, BatchHeader), Refusal> {
    let codec = Codec::from_attributes(header.attributes)
        .ok_or_else(|| Refusal::whole(CORRUPT_MESSAGE, "unknown compression codec"))?;
    let compacted = config.cleanup_policy != CleanupPolicy::Delete;
    let create_time = config.timestamp_type == TimestampType::CreateTime;
    let (earliest, latest) = (
        now_ms.saturating_sub(config.timestamp_before_max_ms),
        now_ms.saturating_add(config.timestamp_after_max_ms),
    );
    // The header bounds the batch's timestamps from above only (its first
    // timestamp need not be the smallest), so a lower bound means reading
    // the records.
    let check_times = create_time
        && (header.max_timestamp > latest || config.timestamp_before_max_ms != i64::MAX);
    let recompress = config.compression.is_some_and(|c| c != codec);
    if !compacted && !check_times && !recompress {
        return Ok((batch, header));
    }
    let body =
        records::body(&batch, &header, limit).map_err(|e| Refusal::whole(CORRUPT_MESSAGE, e))?;
    let mut errors: Vec<(i32, String)> = Vec::new();
    let mut bad_time = false;
    let mut count: i32 = 0;
    for (i, r) in records::records(&body).enumerate() {
        let r = r.map_err(|e| Refusal::whole(CORRUPT_MESSAGE, e))?;
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        count = count.saturating_add(1);
        if compacted && r.key.is_none() {
            errors.push((index, KEYLESS_ON_COMPACTED.to_owned()));
            continue;
        }
        let ts = header.base_timestamp.saturating_add(r.timestamp_delta);
        // -1 is "no timestamp", which Kafka lets through.
        if check_times && ts != -1 && (ts < earliest || ts > latest) {
            bad_time = true;
            let offset = i64::from(r.offset_delta);
            errors.push((
                index,
                format!(
                    "Timestamp {ts} of message with offset {offset} is out of range. \
                     The timestamp should be within [{earliest}, {latest}]"
                ),
            ));
        }
    }
    if count != header.record_count {
        return Err(Refusal::whole(
            INVALID_RECORD,
            "record count does not match the records present",
        ));
    }
    if !errors.is_empty() {
        return Err(refusal(errors, bad_time));
    }
    let Some(target) = config.compression.filter(|c| *c != codec) else {
        return Ok((batch, header));
    };
    let how = Rebuild {
        codec: target,
        levels: config.compression_levels,
        count,
        max_timestamp: header.max_timestamp,
    };
    let rebuilt =
        records::rebuild(&header, &body, how).map_err(|e| Refusal::whole(CORRUPT_MESSAGE, e))?;
    if rebuilt.len() as u64 > config.max_message_bytes {
        return Err(Refusal::whole(
            MESSAGE_TOO_LARGE,
            format!(
                "the batch is {} bytes in the topic's codec ({}), above max.message.bytes",
                rebuilt.len(),
                target.name()
            ),
        ));
    }
    let new_header = BatchHeader::parse(&rebuilt)
        .filter(|_| rebuilt.len() >= HEADER_LEN)
        .ok_or_else(|| Refusal::whole(CORRUPT_MESSAGE, "rebuilt batch is short"))?;
    Ok((rebuilt, new_header))
}

/// Kafka's refusal for records at fault: INVALID_TIMESTAMP when any
/// timestamp is out of range, else INVALID_RECORD, listing the first few.
fn refusal(errors: Vec<(i32, String)>, bad_time: bool) -> Refusal {
    let message = if bad_time {
        "One or more records have been rejected due to invalid timestamp".to_owned()
    } else {
        let shown: Vec<String> = errors
            .iter()
            .take(LISTED)
            .map(|(i, m)| format!("ProduceResponse.RecordError(batchIndex={i}, message='{m}')"))
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, \
             and only showing the first three errors at most: [{}]",
            errors.len(),
            shown.join(", ")
        )
    };
    Refusal {
        code: if bad_time {
            INVALID_TIMESTAMP
        } else {
            INVALID_RECORD
        },
        message,
        record_errors: errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::validate_client_batch;
    use crate::log::records::tests::batch_of;

    /// A client batch of `keys` (one record each, timestamp `ts + i`).
    fn batch(keys: &[Option<&[u8]>], ts: i64, codec: Codec) -> Bytes {
        let recs: Vec<_> = keys.iter().map(|k| (*k, Some(&b"value"[..]))).collect();
        batch_of(0, &recs, ts, codec)
    }

    fn run(b: Bytes, config: &TopicConfig, now: i64) -> Result<(Bytes, BatchHeader), Refusal> {
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        apply(b, h, config, now, 1 << 20)
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_plain_topic_passes_batches_through() {
        let b = batch(&[None, Some(b"k")], NOW, Codec::Gzip);
        let (out, _) = run(b.clone(), &TopicConfig::default(), NOW).unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn compacted_topics_refuse_keyless_records_per_record() {
        let config = TopicConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..TopicConfig::default()
        };
        for codec in [Codec::None, Codec::Lz4] {
            let b = batch(&[Some(b"a"), None, Some(b"c"), None], NOW, codec);
            let e = run(b, &config, NOW).unwrap_err();
            assert_eq!(e.code, INVALID_RECORD);
            let idx: Vec<i32> = e.record_errors.iter().map(|(i, _)| *i).collect();
            assert_eq!(idx, [1, 3]);
            assert!(e.message.contains("2 record errors"), "{}", e.message);
            let ok = batch(&[Some(b"a")], NOW, codec);
            assert!(run(ok, &config, NOW).is_ok());
        }
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let mut config = TopicConfig::default();
        let future = batch(&[Some(b"a")], NOW + 3_600_001, Codec::None);
        let e = run(future.clone(), &config, NOW).unwrap_err();
        assert_eq!((e.code, e.record_errors.len()), (INVALID_TIMESTAMP, 1));
        config.timestamp_after_max_ms = i64::MAX;
        assert!(run(future, &config, NOW).is_ok());
        config.timestamp_before_max_ms = 1000;
        let old = batch(&[Some(b"a"), Some(b"b")], NOW - 1001, Codec::Snappy);
        let e = run(old, &config, NOW).unwrap_err();
        assert_eq!(e.record_errors.len(), 1, "only the first is too old");
        config.timestamp_type = TimestampType::LogAppendTime;
        let old = batch(&[Some(b"a")], NOW - 5000, Codec::None);
        assert!(run(old, &config, NOW).is_ok());
    }

    #[test]
    fn a_topic_codec_rewrites_the_batch() {
        let config = TopicConfig {
            compression: Some(Codec::Zstd),
            ..TopicConfig::default()
        };
        let b = batch(&[Some(b"a"), None, Some(b"c")], NOW, Codec::Gzip);
        let h0 = BatchHeader::parse(&b).unwrap();
        let (out, h) = run(b, &config, NOW).unwrap();
        assert_eq!(h.codec(), Codec::Zstd as i16);
        assert_eq!(
            (h.record_count, h.last_offset_delta, h.max_timestamp),
            (3, 2, h0.max_timestamp)
        );
        let back = validate_client_batch(&out, 1 << 20).unwrap();
        assert_eq!(back, h);
        let uncompressed = TopicConfig {
            compression: Some(Codec::None),
            ..TopicConfig::default()
        };
        let (plain, h) = run(out, &uncompressed, NOW).unwrap();
        assert_eq!(h.codec(), 0);
        assert!(validate_client_batch(&plain, 1 << 20).is_ok());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let config = TopicConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..TopicConfig::default()
        };
        let keys: Vec<Option<&[u8]>> = vec![Some(b"a"); 64];
        let b = batch(&keys, NOW, Codec::Gzip);
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        let e = apply(b, h, &config, NOW, 100).unwrap_err();
        assert_eq!(e.code, CORRUPT_MESSAGE);
    }
}
