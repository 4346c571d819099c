//! A partition's leader epochs: where each epoch's batches start, as
//! Kafka's `LeaderEpochFileCache` keeps them in `leader-epoch-checkpoint`.
//!
//! Every batch carries the epoch of the leader that appended it
//! (`partitionLeaderEpoch`, outside the CRC). The first batch of a higher
//! epoch adds an entry `(epoch, its base offset)`. A leader answers a
//! follower's "where does my last epoch end on your log?" from these
//! ([`LeaderEpochs::end_offset_for`]), which is how a follower whose log
//! diverged from its leader's (an old leader's unacknowledged tail) finds
//! out (KIP-101, KIP-320).
//!
//! ```text
//! leader-epoch-checkpoint := "0\n" count "\n" (epoch " " start_offset "\n")*count
//! ```

use bytes::Bytes;

/// The file's name in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// `(epoch, start offset)`, epochs and offsets ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<(i32, u64)>,
}

impl LeaderEpochs {
    /// The file's entries; `None` when it is not one (the caller starts
    /// empty: divergence is then not checked until a new epoch begins).
    pub fn decode(file: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(file).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut entries: Vec<(i32, u64)> = Vec::new();
        for _ in 0..count {
            let (e, o) = lines.next()?.trim().split_once(' ')?;
            let (e, o): (i32, u64) = (e.parse().ok()?, o.parse().ok()?);
            if e < 0 || entries.last().is_some_and(|&(pe, po)| e <= pe || o < po) {
                return None;
            }
            entries.push((e, o));
        }
        Some(Self { entries })
    }

    /// The file's bytes.
    pub fn encode(&self) -> Bytes {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            s.push_str(&format!("{e} {o}\n"));
        }
        Bytes::from(s)
    }

    /// A batch of `epoch` was appended at `base`: whether that began a new
    /// epoch (the file is then due). Batches of an older epoch than the
    /// latest (a replica copying an old leader's batches after a newer
    /// epoch began, which a leader never sends) change nothing.
    pub fn appended(&mut self, epoch: i32, base: u64) -> bool {
        if epoch < 0 || self.entries.last().is_some_and(|&(e, _)| epoch <= e) {
            return false;
        }
        self.entries.push((epoch, base));
        true
    }

    /// Forget the epochs that start at or past `end` (the log was cut
    /// there); whether any was.
    pub fn truncate_from(&mut self, end: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        self.entries.len() != before
    }

    /// The epoch of the last batch, if any batch carried one.
    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Where the first epoch above `epoch` starts here, if one does.
    pub fn start_after(&self, epoch: i32) -> Option<u64> {
        self.entries
            .iter()
            .find(|&&(e, _)| e > epoch)
            .map(|&(_, start)| start)
    }

    /// Where `epoch` ends on this log, whose end is `log_end`: the largest
    /// epoch at or below it, and the start of the next one (or the log
    /// end when it is the latest). `None` when no epoch is at or below it
    /// (or none is known).
    pub fn end_offset_for(&self, epoch: i32, log_end: u64) -> Option<(i32, u64)> {
        let i = self.entries.iter().rposition(|&(e, _)| e <= epoch)?;
        let end = self.entries.get(i + 1).map_or(log_end, |&(_, start)| start);
        Some((self.entries[i].0, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_record_where_each_begins_and_answer_where_each_ends() {
        let mut e = LeaderEpochs::default();
        assert_eq!(e.end_offset_for(0, 10), None);
        assert!(e.appended(0, 0));
        assert!(!e.appended(0, 5), "same epoch");
        assert!(e.appended(2, 10));
        assert!(!e.appended(1, 12), "older epoch");
        assert!(e.appended(5, 20));
        assert_eq!(e.latest(), Some(5));
        assert_eq!(e.end_offset_for(0, 30), Some((0, 10)));
        assert_eq!(
            e.end_offset_for(1, 30),
            Some((0, 10)),
            "1 never led: 0's end"
        );
        assert_eq!(e.end_offset_for(2, 30), Some((2, 20)));
        assert_eq!(e.end_offset_for(7, 30), Some((5, 30)));
        assert_eq!(e.end_offset_for(-1, 30), None);
        assert_eq!(e.start_after(-1), Some(0));
        assert_eq!(e.start_after(2), Some(20));
        assert_eq!(e.start_after(5), None);

        let file = e.encode();
        assert_eq!(&file[..], b"0\n3\n0 0\n2 10\n5 20\n");
        assert_eq!(LeaderEpochs::decode(&file), Some(e.clone()));
        for cut in 0..file.len() - 1 {
            let d = LeaderEpochs::decode(&file[..cut]);
            assert!(d.is_none() || d.is_some_and(|d| d != e), "cut at {cut}");
        }
        assert_eq!(
            LeaderEpochs::decode(b"0\n2\n3 5\n2 9\n"),
            None,
            "out of order"
        );
        assert_eq!(LeaderEpochs::decode(b"1\n0\n"), None, "another version");

        assert!(e.truncate_from(20));
        assert_eq!(e.latest(), Some(2));
        assert!(!e.truncate_from(20));
    }
}
