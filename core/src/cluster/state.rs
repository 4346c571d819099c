//! The quorum's durable state, in one file of the data directory,
//! `quorum-state`: the Raft hard state (term, vote, commit), the snapshot
//! (the image as of an index) and every log entry after it. It is
//! rewritten whole, atomically (a temporary file synced and renamed over
//! it, the directory synced), before any message that depends on it
//! leaves — a vote, or the acknowledgement of entries.
//!
//! The file stays small: the log is cut every
//! `metadata.log.snapshot.interval.records` entries, so it holds at most
//! that many. Writing it whole costs one small file per Raft round that
//! changed something (an appended record, a new term or vote).
//!
//! ```text
//! file     := magic:"CVQS" version:u8 crc32c:u32 body     (crc of body)
//! body     := term:u64 vote:u64 commit:u64
//!             snap_index:u64 snap_term:u64 image:bytes
//!             count:u32 entry*count
//! entry    := type:u8 term:u64 index:u64 data:bytes context:bytes
//! bytes    := len:u32 byte*len
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::prelude::{Entry, EntryType, HardState};

/// The file's name in the data directory.
pub const QUORUM_STATE: &str = "quorum-state";

const MAGIC: &[u8; 4] = b"CVQS";
const VERSION: u8 = 0;

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stored {
    pub(crate) hard_state: HardState,
    /// The snapshot's index and term (0, 0 before the first cut).
    pub(crate) snap_index: u64,
    pub(crate) snap_term: u64,
    /// The image as of the snapshot index (see [`super::Image::encode`]).
    pub(crate) image: Bytes,
    /// The entries after the snapshot index, in order.
    pub(crate) entries: Vec<Entry>,
}

impl Stored {
    pub(crate) fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        let hs = &self.hard_state;
        body.put_u64(hs.term);
        body.put_u64(hs.vote);
        body.put_u64(hs.commit);
        body.put_u64(self.snap_index);
        body.put_u64(self.snap_term);
        put_bytes(&mut body, &self.image);
        body.put_u32(self.entries.len() as u32);
        for e in &self.entries {
            body.put_u8(e.entry_type as u8);
            body.put_u64(e.term);
            body.put_u64(e.index);
            put_bytes(&mut body, &e.data);
            put_bytes(&mut body, &e.context);
        }
        let mut out = BytesMut::with_capacity(body.len() + 9);
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        out.put_u32(crc32c::crc32c(&body));
        out.put_slice(&body);
        out.freeze()
    }

    pub(crate) fn decode(file: &[u8]) -> Result<Stored, &'static str> {
        if file.len() < 9 || &file[..4] != MAGIC {
            return Err("not a quorum-state file");
        }
        if file[4] != VERSION {
            return Err("a quorum-state file of another version");
        }
        let crc = u32::from_be_bytes([file[5], file[6], file[7], file[8]]);
        let mut b = Bytes::copy_from_slice(&file[9..]);
        if crc32c::crc32c(&b) != crc {
            return Err("quorum-state checksum mismatch");
        }
        let short = "quorum-state cut short";
        if b.remaining() < 5 * 8 {
            return Err(short);
        }
        let mut s = Stored::default();
        s.hard_state.term = b.get_u64();
        s.hard_state.vote = b.get_u64();
        s.hard_state.commit = b.get_u64();
        s.snap_index = b.get_u64();
        s.snap_term = b.get_u64();
        s.image = get_bytes(&mut b).ok_or(short)?;
        if b.remaining() < 4 {
            return Err(short);
        }
        let count = b.get_u32() as usize;
        if count > b.remaining() / (1 + 8 + 8 + 4 + 4) {
            return Err("quorum-state entry count beyond its bytes");
        }
        let mut expect = s.snap_index + 1;
        for _ in 0..count {
            if b.remaining() < 1 + 8 + 8 {
                return Err(short);
            }
            let entry_type = match b.get_u8() {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                _ => return Err("quorum-state entry of an unknown type"),
            };
            let mut e = Entry {
                entry_type,
                term: b.get_u64(),
                index: b.get_u64(),
                ..Entry::default()
            };
            e.data = get_bytes(&mut b).ok_or(short)?;
            e.context = get_bytes(&mut b).ok_or(short)?;
            if e.index != expect {
                return Err("quorum-state entries out of order");
            }
            expect += 1;
            s.entries.push(e);
        }
        if b.has_remaining() {
            return Err("bytes after the quorum-state entries");
        }
        if s.hard_state.commit > expect - 1 {
            return Err("quorum-state commit beyond its entries");
        }
        Ok(s)
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_u32(v.len() as u32);
    b.put_slice(v);
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_u32() as usize;
    (b.remaining() >= n).then(|| b.split_to(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stored {
        let mut s = Stored {
            snap_index: 10,
            snap_term: 2,
            image: Bytes::from_static(b"image"),
            ..Stored::default()
        };
        s.hard_state.term = 3;
        s.hard_state.vote = 2;
        s.hard_state.commit = 11;
        s.entries = (11..14)
            .map(|i| Entry {
                term: 3,
                index: i,
                data: Bytes::from(vec![i as u8; 3]),
                ..Entry::default()
            })
            .collect();
        s
    }

    #[test]
    fn the_state_comes_back_as_written() {
        let s = sample();
        assert_eq!(Stored::decode(&s.encode()), Ok(s));
        assert_eq!(
            Stored::decode(&Stored::default().encode()),
            Ok(Stored::default())
        );
    }

    #[test]
    fn damage_is_refused() {
        let b = sample().encode();
        for cut in 0..b.len() {
            assert!(Stored::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..b.len() {
            let mut bad = b.to_vec();
            bad[at] ^= 0x10;
            assert!(Stored::decode(&bad).is_err(), "flip at {at}");
        }
        let mut gap = sample();
        gap.entries.remove(1);
        assert!(Stored::decode(&gap.encode()).is_err());
        let mut far = sample();
        far.hard_state.commit = 99;
        assert!(Stored::decode(&far.encode()).is_err());
    }
}
