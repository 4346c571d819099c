//! The data directory's names, Kafka's own, in one place for the broker,
//! the drivers that scan and write the directory, and the simulated disk:
//! `<topic>-<partition>/` per partition, and in it `<offset, 20 digits>.log`,
//! `.index` and `.timeindex` per segment and `.snapshot` per producer-state
//! snapshot.

/// A segment's log file extension.
pub const LOG: &str = "log";
/// A segment's offset index extension.
pub const INDEX: &str = "index";
/// A segment's time index extension.
pub const TIME_INDEX: &str = "timeindex";
/// A producer-state snapshot's extension.
pub const SNAPSHOT: &str = "snapshot";
/// The files of one segment, in the order commands name their lengths.
pub const SEGMENT_FILES: [&str; 3] = [LOG, INDEX, TIME_INDEX];

/// `<offset, 20 digits>.<ext>`: a segment file's or a snapshot's name.
pub fn offset_file_name(offset: u64, ext: &str) -> String {
    format!("{offset:020}.{ext}")
}

/// `<dir>/<offset, 20 digits>.<ext>`, relative to the data directory.
pub fn offset_file_path(dir: &str, offset: u64, ext: &str) -> String {
    format!("{dir}/{offset:020}.{ext}")
}

/// The offset a `<20 digits>.<ext>` file name gives; `None` for any other
/// name (including 20 digits beyond `u64::MAX`: not one of ours).
pub fn parse_offset_file_name(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `<topic>-<partition>`: a partition's directory.
pub fn partition_dir(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// `orders-3` → (`orders`, 3); `None` for a name that is not a partition
/// directory (no dash, a negative or zero-padded number).
pub fn parse_partition_dir(dir: &str) -> Option<(&str, i32)> {
    let (topic, p) = dir.rsplit_once('-')?;
    let p: i32 = p.parse().ok()?;
    (p >= 0 && p.to_string().len() == dir.len() - topic.len() - 1).then_some((topic, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_names() {
        assert_eq!(offset_file_name(42, LOG), "00000000000000000042.log");
        assert_eq!(
            parse_offset_file_name("00000000000000000042.log", LOG),
            Some(42)
        );
        assert_eq!(parse_offset_file_name("0000000000000000042.log", LOG), None);
        assert_eq!(
            parse_offset_file_name("00000000000000000042.index", LOG),
            None
        );
        assert_eq!(parse_offset_file_name("00000000000000000042log", LOG), None);
        assert_eq!(
            parse_offset_file_name("9999999999999999999x.log", LOG),
            None
        );
        assert_eq!(
            parse_offset_file_name("99999999999999999999.log", LOG),
            None
        );
        assert_eq!(
            offset_file_path("t-0", 7, SNAPSHOT),
            "t-0/00000000000000000007.snapshot"
        );
    }

    #[test]
    fn partition_dirs() {
        assert_eq!(partition_dir("my-topic", 12), "my-topic-12");
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(parse_partition_dir("t-01"), None);
        assert_eq!(parse_partition_dir("lost+found"), None);
    }
}
