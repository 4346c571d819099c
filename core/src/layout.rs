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

/// The suffix of a segment file the log cleaner is writing (`<offset>.log.cleaned`).
pub const CLEANED: &str = "cleaned";

/// `<dir>/<offset, 20 digits>.<ext>.cleaned`: a cleaned segment's file
/// before its swap.
pub fn cleaned_file_path(dir: &str, offset: u64, ext: &str) -> String {
    format!("{dir}/{offset:020}.{ext}.{CLEANED}")
}

/// One file operation in a partition directory, by file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Delete the file.
    Remove(String),
    /// Rename the first over the second.
    Rename(String, String),
}

/// What a driver does at startup, before reading a partition directory
/// whose files are `names`, to finish or undo a cleaned segment's swap (the
/// protocol of [`crate::Command::SwapCleaned`]): a `<offset>.log.cleaned`
/// still there means the swap never committed, so every `.cleaned` file of
/// that offset goes and the old segment stands; without it the log was
/// swapped, so the index files left under `.cleaned` names are renamed
/// into place. The operations run in order; the directory is synced after.
pub fn finish_swaps<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<FileOp> {
    let mut cleaned: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
    for name in names {
        let Some(stem) = name.strip_suffix(CLEANED).and_then(|n| n.strip_suffix('.')) else {
            continue;
        };
        if let Some((offset, ext)) = SEGMENT_FILES
            .iter()
            .find_map(|ext| parse_offset_file_name(stem, ext).map(|o| (o, *ext)))
        {
            cleaned.entry(offset).or_default().push(ext);
        }
    }
    let mut ops = Vec::new();
    for (offset, exts) in cleaned {
        let committed = !exts.contains(&LOG);
        for ext in SEGMENT_FILES.iter().filter(|e| exts.contains(e)) {
            let from = format!("{}.{CLEANED}", offset_file_name(offset, ext));
            ops.push(if committed {
                FileOp::Rename(from, offset_file_name(offset, ext))
            } else {
                FileOp::Remove(from)
            });
        }
    }
    ops
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
    fn unfinished_swaps_are_undone_and_committed_ones_finished() {
        let names = [
            "00000000000000000000.log",
            "00000000000000000000.log.cleaned",
            "00000000000000000000.index.cleaned",
            "00000000000000000010.log",
            "00000000000000000010.index",
            "00000000000000000010.index.cleaned",
            "00000000000000000010.timeindex.cleaned",
            "00000000000000000020.log",
            "junk.cleaned",
        ];
        let n = |o: u64, e: &str| offset_file_name(o, e);
        assert_eq!(
            finish_swaps(names),
            [
                FileOp::Remove(format!("{}.cleaned", n(0, LOG))),
                FileOp::Remove(format!("{}.cleaned", n(0, INDEX))),
                FileOp::Rename(format!("{}.cleaned", n(10, INDEX)), n(10, INDEX)),
                FileOp::Rename(format!("{}.cleaned", n(10, TIME_INDEX)), n(10, TIME_INDEX)),
            ]
        );
        assert!(finish_swaps(["00000000000000000000.log"]).is_empty());
    }

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
