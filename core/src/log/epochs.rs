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

    /// The log start moved up to `start` (retention, DeleteRecords), as
    /// Kafka's `truncateFromStart`: the epochs that began at or below it
    /// go but the last of them, which now begins at `start`, so no entry
    /// names records the log no longer has. Whether anything changed.
    pub fn truncate_to_start(&mut self, start: u64) -> bool {
        let below = self.entries.partition_point(|&(_, s)| s <= start);
        if below == 0 || (below == 1 && self.entries[0].1 == start) {
            return false;
        }
        let epoch = self.entries[below - 1].0;
        self.entries.drain(..below);
        self.entries.insert(0, (epoch, start));
        true
    }

    /// The epoch of the batch at `offset`: the latest one that begins at or
    /// below it (Kafka's `epochForOffset`).
    pub fn epoch_at(&self, offset: u64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|&&(_, s)| s <= offset)
            .map(|&(e, _)| e)
    }

    /// The first epoch and where it starts.
    pub fn first(&self) -> Option<(i32, u64)> {
        self.entries.first().copied()
    }

    /// Where `epoch` starts, if a batch of it was appended.
    pub fn start_of(&self, epoch: i32) -> Option<u64> {
        self.entries
            .iter()
            .find(|&&(e, _)| e == epoch)
            .map(|&(_, start)| start)
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

    /// Where `epoch` ends on this log, whose end is `log_end`, as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` answers (OffsetForLeaderEpoch,
    /// and a fetch's last fetched epoch): the largest epoch at or below it
    /// and the start of the next one, or the log end for the latest.
    /// `current` is the epoch the log is led in now, if this broker leads
    /// it: Kafka's cache holds it from the moment leadership begins, before
    /// any batch of it, so it counts as starting at the log end. An epoch
    /// below every known one ends where the first begins. `None` — Kafka's
    /// undefined `(-1, -1)` — for -1 and for an epoch above every one known.
    pub fn end_offset_for(
        &self,
        epoch: i32,
        log_end: u64,
        current: Option<i32>,
    ) -> Option<(i32, u64)> {
        if epoch < 0 {
            return None;
        }
        let latest = self.latest();
        let current = current.filter(|&c| latest.is_none_or(|l| c > l));
        if latest == Some(epoch) || current == Some(epoch) {
            return Some((epoch, log_end));
        }
        let next = self
            .start_after(epoch)
            .or_else(|| current.filter(|&c| c > epoch).map(|_| log_end))?;
        let floor = self.entries.iter().rev().find(|&&(e, _)| e <= epoch);
        Some((floor.map_or(epoch, |&(e, _)| e), next.min(log_end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_log_start_keeps_the_epoch_it_falls_in() {
        let mut e = LeaderEpochs::default();
        assert!(!e.truncate_to_start(5), "nothing to trim");
        e.appended(0, 0);
        e.appended(2, 10);
        e.appended(5, 20);
        assert!(!e.truncate_to_start(0), "already starts there");
        assert!(e.truncate_to_start(12));
        assert_eq!(e.first(), Some((2, 12)));
        assert_eq!(e.epoch_at(12), Some(2));
        assert_eq!(e.epoch_at(25), Some(5));
        assert_eq!(e.epoch_at(11), None, "below the first");
        assert_eq!(e.end_offset_for(1, 30, None), Some((1, 12)));
        assert!(e.truncate_to_start(20), "exactly where 5 begins");
        assert_eq!(e.first(), Some((5, 20)));
        assert_eq!(
            e.encode(),
            LeaderEpochs::decode(b"0\n1\n5 20\n").unwrap().encode()
        );
        assert!(!e.truncate_to_start(20));
    }

    #[test]
    fn epochs_record_where_each_begins_and_answer_where_each_ends() {
        let mut e = LeaderEpochs::default();
        assert_eq!(e.end_offset_for(0, 10, None), None);
        assert_eq!(
            e.end_offset_for(0, 10, Some(3)),
            Some((0, 10)),
            "led in 3 and nothing written: 0 ends at the log end"
        );
        assert_eq!(e.end_offset_for(3, 10, Some(3)), Some((3, 10)));
        assert!(e.appended(0, 0));
        assert!(!e.appended(0, 5), "same epoch");
        assert!(e.appended(2, 10));
        assert!(!e.appended(1, 12), "older epoch");
        assert!(e.appended(5, 20));
        assert_eq!(e.latest(), Some(5));
        assert_eq!(e.end_offset_for(0, 30, None), Some((0, 10)));
        assert_eq!(
            e.end_offset_for(1, 30, None),
            Some((0, 10)),
            "1 never led: 0's end"
        );
        assert_eq!(e.end_offset_for(2, 30, None), Some((2, 20)));
        assert_eq!(e.end_offset_for(5, 30, None), Some((5, 30)));
        assert_eq!(e.end_offset_for(7, 30, None), None, "above all known");
        assert_eq!(
            e.end_offset_for(6, 30, Some(7)),
            Some((5, 30)),
            "6 never led; 7 leads now, from the log end"
        );
        assert_eq!(e.end_offset_for(7, 30, Some(7)), Some((7, 30)));
        assert_eq!(e.end_offset_for(8, 30, Some(7)), None);
        assert_eq!(e.end_offset_for(-1, 30, Some(7)), None);
        assert_eq!(e.start_after(-1), Some(0));
        assert_eq!(e.start_after(2), Some(20));
        assert_eq!(e.start_after(5), None);
        let mut late = LeaderEpochs::default();
        late.appended(3, 100);
        assert_eq!(
            late.end_offset_for(1, 150, None),
            Some((1, 100)),
            "below every known epoch: it ends where the first begins"
        );

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
