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

/// The extension of a swap's manifest, `<offset>.swap`: the base offsets of
/// the other segments a cleaned segment replaces, written before the swap
/// commits so a crash after it still knows which files to delete.
pub const SWAP: &str = "swap";

/// A swap manifest's content: version 0, the count, one base offset a line.
pub fn encode_swap_manifest(bases: &[u64]) -> String {
    let mut s = format!("0\n{}\n", bases.len());
    for b in bases {
        s.push_str(&format!("{b}\n"));
    }
    s
}

/// The base offsets a swap manifest lists; `None` for anything else.
pub fn parse_swap_manifest(bytes: &[u8]) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let n: usize = lines.next()?.parse().ok()?;
    let bases: Vec<u64> = lines.map(|l| l.parse().ok()).collect::<Option<_>>()?;
    (bases.len() == n).then_some(bases)
}

/// What a driver does at startup, before reading a partition directory
/// whose files are `names`, to finish or undo the log cleaner's swaps (the
/// protocol of [`crate::Command::SwapCleaned`]); `manifest` reads the swap
/// manifest of an offset, if there is one.
///
/// A `<offset>.log.cleaned` still there means the swap never committed:
/// every `.cleaned` file of that offset goes, and its manifest, and the old
/// segments stand. Without it the log was swapped: the index files left
/// under `.cleaned` names are renamed into place and the segments the
/// manifest lists are deleted, then the manifest. A manifest that does not
/// parse (a torn write never renamed into place cannot be one) is left for
/// the operator, with the segments it would name. The operations run in
/// order; the directory is synced after.
pub fn finish_swaps<'a>(
    names: impl IntoIterator<Item = &'a str>,
    manifest: impl Fn(u64) -> Option<Vec<u8>>,
) -> Vec<FileOp> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut cleaned: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut swaps: BTreeSet<u64> = BTreeSet::new();
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut ops = Vec::new();
    for name in names {
        present.insert(name.to_owned());
        if let Some(o) = parse_offset_file_name(name, SWAP) {
            swaps.insert(o);
            continue;
        }
        if name.ends_with(&format!(".{SWAP}.tmp")) {
            ops.push(FileOp::Remove(name.to_owned()));
            continue;
        }
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
    let offsets: BTreeSet<u64> = cleaned.keys().chain(&swaps).copied().collect();
    for offset in offsets {
        let exts = cleaned.get(&offset).cloned().unwrap_or_default();
        let committed = !exts.contains(&LOG);
        for ext in SEGMENT_FILES.iter().filter(|e| exts.contains(e)) {
            let from = format!("{}.{CLEANED}", offset_file_name(offset, ext));
            ops.push(if committed {
                FileOp::Rename(from, offset_file_name(offset, ext))
            } else {
                FileOp::Remove(from)
            });
        }
        if !swaps.contains(&offset) {
            continue;
        }
        if committed {
            let Some(bases) = manifest(offset).as_deref().and_then(parse_swap_manifest) else {
                continue;
            };
            for base in bases.into_iter().filter(|&b| b != offset) {
                for ext in SEGMENT_FILES {
                    let name = offset_file_name(base, ext);
                    if present.contains(&name) {
                        ops.push(FileOp::Remove(name));
                    }
                }
            }
        }
        ops.push(FileOp::Remove(offset_file_name(offset, SWAP)));
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
        let n = |o: u64, e: &str| offset_file_name(o, e);
        let c = |o: u64, e: &str| format!("{}.cleaned", offset_file_name(o, e));
        let names = [
            // 0: never committed, with a manifest.
            n(0, LOG),
            c(0, LOG),
            c(0, INDEX),
            n(0, SWAP),
            n(5, LOG),
            // 10: committed; replaced 10 and 20; indexes still to rename.
            n(10, LOG),
            n(10, INDEX),
            c(10, INDEX),
            c(10, TIME_INDEX),
            n(10, SWAP),
            n(20, LOG),
            n(20, INDEX),
            // 30: committed, one segment, no manifest.
            n(30, LOG),
            c(30, INDEX),
            n(40, LOG),
            "junk.cleaned".to_owned(),
            format!("{}.tmp", n(50, SWAP)),
        ];
        let manifest = |o: u64| match o {
            0 => Some(encode_swap_manifest(&[0, 5]).into_bytes()),
            10 => Some(encode_swap_manifest(&[10, 20]).into_bytes()),
            _ => None,
        };
        assert_eq!(
            finish_swaps(names.iter().map(String::as_str), manifest),
            [
                FileOp::Remove(format!("{}.tmp", n(50, SWAP))),
                FileOp::Remove(c(0, LOG)),
                FileOp::Remove(c(0, INDEX)),
                FileOp::Remove(n(0, SWAP)),
                FileOp::Rename(c(10, INDEX), n(10, INDEX)),
                FileOp::Rename(c(10, TIME_INDEX), n(10, TIME_INDEX)),
                FileOp::Remove(n(20, LOG)),
                FileOp::Remove(n(20, INDEX)),
                FileOp::Remove(n(10, SWAP)),
                FileOp::Rename(c(30, INDEX), n(30, INDEX)),
            ]
        );
        assert!(finish_swaps([n(0, LOG).as_str()], |_| None).is_empty());
        assert_eq!(parse_swap_manifest(b"0\n2\n1\n"), None);
        assert_eq!(
            parse_swap_manifest(encode_swap_manifest(&[3, 4]).as_bytes()),
            Some(vec![3, 4])
        );
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
