//! A history checker for the failover tests: what producers were told was
//! acknowledged and what consumers read, checked against what Kafka
//! promises for `acks=all` on a cluster that lost a broker.
//!
//! - **No acknowledged record lost:** every acknowledged value is in the
//!   final read of each partition from its earliest offset, at the offset
//!   its acknowledgement gave.
//! - **No duplicates:** a value an idempotent producer sent is there once,
//!   however often the producer retried it.
//! - **One value per offset:** no two reads, by any reader, saw different
//!   values at one offset of a partition.
//! - **Monotonic reads:** each reader saw each partition's offsets in
//!   increasing order.
//!
//! Values must be unique across producers (a prefix per producer does it).

use std::collections::{BTreeMap, HashMap};

/// One producer's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub value: String,
    pub partition: i32,
    pub offset: i64,
    /// Sent by an idempotent producer: its retries must not duplicate it.
    pub idempotent: bool,
}

/// One record a reader read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub reader: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Acknowledgements and reads, in the order each producer and reader saw
/// them.
#[derive(Debug, Default, Clone)]
pub struct History {
    acks: Vec<Ack>,
    reads: Vec<Read>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn acked(
        &mut self,
        value: impl Into<String>,
        (partition, offset): (i32, i64),
        idempotent: bool,
    ) {
        self.acks.push(Ack {
            value: value.into(),
            partition,
            offset,
            idempotent,
        });
    }

    pub fn read(
        &mut self,
        reader: &str,
        (partition, offset): (i32, i64),
        value: impl Into<String>,
    ) {
        self.reads.push(Read {
            reader: reader.to_owned(),
            partition,
            offset,
            value: value.into(),
        });
    }

    /// How many acknowledgements it holds.
    pub fn acks(&self) -> usize {
        self.acks.len()
    }

    /// Every violation found, with `final_reader` the reader whose reads
    /// are the final read of every partition from its earliest offset.
    pub fn violations(&self, final_reader: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut at: HashMap<(i32, i64), &Read> = HashMap::new();
        let mut last: HashMap<(&str, i32), i64> = HashMap::new();
        for r in &self.reads {
            if let Some(seen) = at.insert((r.partition, r.offset), r) {
                if seen.value != r.value {
                    found.push(format!(
                        "{}-{}: {} read {:?}, {} read {:?}",
                        r.partition, r.offset, seen.reader, seen.value, r.reader, r.value
                    ));
                }
            }
            let prev = last.insert((r.reader.as_str(), r.partition), r.offset);
            if prev.is_some_and(|p| p >= r.offset) {
                found.push(format!(
                    "{} read partition {} at {} after {}",
                    r.reader,
                    r.partition,
                    r.offset,
                    prev.unwrap_or_default()
                ));
            }
        }
        let mut finals: BTreeMap<&str, Vec<&Read>> = BTreeMap::new();
        for r in self.reads.iter().filter(|r| r.reader == final_reader) {
            finals.entry(r.value.as_str()).or_default().push(r);
        }
        for a in &self.acks {
            match finals.get(a.value.as_str()).map(Vec::as_slice) {
                None | Some([]) => found.push(format!(
                    "{:?}, acknowledged at {}-{}, is lost",
                    a.value, a.partition, a.offset
                )),
                Some(copies) => {
                    if !copies
                        .iter()
                        .any(|r| (r.partition, r.offset) == (a.partition, a.offset))
                    {
                        found.push(format!(
                            "{:?} was acknowledged at {}-{} but is at {:?}",
                            a.value,
                            a.partition,
                            a.offset,
                            copies
                                .iter()
                                .map(|r| (r.partition, r.offset))
                                .collect::<Vec<_>>()
                        ));
                    }
                    if a.idempotent && copies.len() > 1 {
                        found.push(format!("{:?} is there {} times", a.value, copies.len()));
                    }
                }
            }
        }
        found
    }

    /// Panics with every violation, if there is one.
    pub fn check(&self, final_reader: &str) {
        let v = self.violations(final_reader);
        assert!(
            v.is_empty(),
            "{} violations in a history of {} acknowledgements and {} reads:\n{}",
            v.len(),
            self.acks.len(),
            self.reads.len(),
            v.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> History {
        let mut h = History::new();
        h.acked("a", (0, 0), true);
        h.acked("b", (0, 1), true);
        h.acked("c", (1, 0), false);
        h.read("live", (0, 0), "a");
        h.read("live", (0, 1), "b");
        for (p, o, v) in [(0, 0, "a"), (0, 1, "b"), (0, 2, "unacked"), (1, 0, "c")] {
            h.read("final", (p, o), v);
        }
        h
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(good().violations("final"), Vec::<String>::new());
    }

    #[test]
    fn each_violation_is_found() {
        let mut lost = good();
        lost.acked("d", (1, 1), true);
        assert_eq!(lost.violations("final").len(), 1, "lost");

        let mut moved = good();
        moved.acked("e", (1, 5), true);
        moved.read("final", (1, 1), "e");
        assert_eq!(moved.violations("final").len(), 1, "elsewhere than acked");

        let mut twice = good();
        twice.read("final", (0, 3), "a");
        assert_eq!(twice.violations("final").len(), 1, "duplicate");
        let mut not_idempotent = good();
        not_idempotent.read("final", (1, 1), "c");
        assert!(
            not_idempotent.violations("final").is_empty(),
            "retries may duplicate"
        );

        let mut two_values = good();
        two_values.read("other", (0, 1), "x");
        assert_eq!(
            two_values.violations("final").len(),
            1,
            "two values at one offset"
        );

        let mut backwards = good();
        backwards.read("live", (0, 0), "a");
        assert_eq!(backwards.violations("final").len(), 1, "not monotonic");
    }
}
