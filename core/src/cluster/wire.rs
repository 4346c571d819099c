//! Raft messages between brokers, in Conveyor's own frame.
//!
//! raft-rs's messages are protobuf structs, and its codec is protobuf 2.28,
//! which has an advisory for stack overflow on untrusted input. A peer's
//! bytes are untrusted, so they never reach that parser: each field is
//! written here at a fixed width, big-endian, and read back with every
//! count and length checked against the bytes left before anything is
//! allocated. Nesting is fixed (a message holds entries and at most one
//! snapshot; nothing holds a message), so no input can recurse.
//!
//! A frame is a Kafka request frame with a header of Conveyor's own API key
//! ([`RAFT_API_KEY`], far from Kafka's), version 0, request header v1; its
//! body is a batch of messages. It is one-way: nothing answers it, as Raft
//! needs no answer to a message beyond the messages it sends back.
//!
//! ```text
//! body      := count:u32 message*count
//! message   := type:u8 to:u64 from:u64 term:u64 log_term:u64 index:u64
//!              commit:u64 commit_term:u64 request_snapshot:u64 reject:u8
//!              reject_hint:u64 priority:i64 context:bytes
//!              entries:u32 entry*entries  has_snapshot:u8 snapshot?
//! entry     := type:u8 term:u64 index:u64 data:bytes context:bytes
//! snapshot  := data:bytes index:u64 term:u64 voters:ids learners:ids
//!              voters_outgoing:ids learners_next:ids auto_leave:u8
//! bytes     := len:u32 byte*len        ids := count:u32 u64*count
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::prelude::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};

/// The API key of a Raft frame: Conveyor's own, not one of Kafka's (which
/// stay below a thousand), so no Kafka request can be mistaken for one.
pub const RAFT_API_KEY: i16 = 32_000;

/// The version of the frame described above.
pub const RAFT_VERSION: i16 = 0;

/// The fewest bytes a message takes (no context, entries or snapshot).
const MESSAGE_MIN: usize = 1 + 8 * 8 + 1 + 8 + 8 + 4 + 4 + 1;
/// The fewest bytes an entry takes (empty data and context).
const ENTRY_MIN: usize = 1 + 8 + 8 + 4 + 4;

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a field, count or length needs.
    Short,
    /// A message or entry type no version of this frame has.
    UnknownType(u8),
    /// Bytes left over after the last message.
    Trailing,
}

/// A request frame (length prefix included) carrying `messages` from
/// broker `node_id`.
pub fn encode_frame(node_id: i32, correlation_id: i32, messages: &[Message]) -> Bytes {
    let mut b = BytesMut::with_capacity(64 + messages.len() * 96);
    b.put_i32(0);
    b.put_i16(RAFT_API_KEY);
    b.put_i16(RAFT_VERSION);
    b.put_i32(correlation_id);
    let client = format!("conveyor-{node_id}");
    b.put_i16(client.len() as i16);
    b.put_slice(client.as_bytes());
    encode_body(&mut b, messages);
    let len = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    b.freeze()
}

/// Whether a request frame (without its length prefix) is a Raft frame.
pub fn is_raft_frame(frame: &[u8]) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == RAFT_API_KEY
}

/// The messages of a Raft request frame (without its length prefix).
pub fn decode_frame(mut frame: Bytes) -> Result<Vec<Message>, WireError> {
    need(&frame, 2 + 2 + 4 + 2)?;
    let _key = frame.get_i16();
    let version = frame.get_i16();
    if version != RAFT_VERSION {
        return Err(WireError::UnknownType(version.clamp(0, 255) as u8));
    }
    let _correlation = frame.get_i32();
    let client_len = frame.get_i16();
    if client_len > 0 {
        let n = client_len as usize;
        need(&frame, n)?;
        frame.advance(n);
    }
    decode_body(frame)
}

fn encode_body(b: &mut BytesMut, messages: &[Message]) {
    b.put_u32(messages.len() as u32);
    for m in messages {
        b.put_u8(m.msg_type as u8);
        for v in [
            m.to,
            m.from,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            m.commit_term,
            m.request_snapshot,
        ] {
            b.put_u64(v);
        }
        b.put_u8(u8::from(m.reject));
        b.put_u64(m.reject_hint);
        b.put_i64(m.priority);
        put_bytes(b, &m.context);
        b.put_u32(m.entries.len() as u32);
        for e in m.entries.iter() {
            b.put_u8(e.entry_type as u8);
            b.put_u64(e.term);
            b.put_u64(e.index);
            put_bytes(b, &e.data);
            put_bytes(b, &e.context);
        }
        match m.snapshot.as_ref() {
            None => b.put_u8(0),
            Some(s) => {
                b.put_u8(1);
                put_bytes(b, &s.data);
                let meta = s.metadata.as_ref();
                b.put_u64(meta.map_or(0, |m| m.index));
                b.put_u64(meta.map_or(0, |m| m.term));
                let cs = meta.and_then(|m| m.conf_state.as_ref());
                let empty = Vec::new();
                for ids in [
                    cs.map_or(&empty, |c| &c.voters),
                    cs.map_or(&empty, |c| &c.learners),
                    cs.map_or(&empty, |c| &c.voters_outgoing),
                    cs.map_or(&empty, |c| &c.learners_next),
                ] {
                    b.put_u32(ids.len() as u32);
                    for &id in ids {
                        b.put_u64(id);
                    }
                }
                b.put_u8(u8::from(cs.is_some_and(|c| c.auto_leave)));
            }
        }
    }
}

fn decode_body(mut b: Bytes) -> Result<Vec<Message>, WireError> {
    need(&b, 4)?;
    let count = b.get_u32() as usize;
    // Every message takes at least MESSAGE_MIN bytes: a count beyond what
    // the bytes can hold is refused before anything is allocated.
    if count > b.remaining() / MESSAGE_MIN {
        return Err(WireError::Short);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(decode_message(&mut b)?);
    }
    if b.has_remaining() {
        return Err(WireError::Trailing);
    }
    Ok(out)
}

fn decode_message(b: &mut Bytes) -> Result<Message, WireError> {
    need(b, MESSAGE_MIN)?;
    let mut m = Message {
        msg_type: message_type(b.get_u8())?,
        ..Message::default()
    };
    m.to = b.get_u64();
    m.from = b.get_u64();
    m.term = b.get_u64();
    m.log_term = b.get_u64();
    m.index = b.get_u64();
    m.commit = b.get_u64();
    m.commit_term = b.get_u64();
    m.request_snapshot = b.get_u64();
    m.reject = b.get_u8() != 0;
    m.reject_hint = b.get_u64();
    m.priority = b.get_i64();
    m.context = get_bytes(b)?;
    need(b, 4)?;
    let entries = b.get_u32() as usize;
    if entries > b.remaining() / ENTRY_MIN {
        return Err(WireError::Short);
    }
    let mut list = Vec::with_capacity(entries);
    for _ in 0..entries {
        need(b, 1 + 8 + 8)?;
        let mut e = Entry {
            entry_type: entry_type(b.get_u8())?,
            ..Entry::default()
        };
        e.term = b.get_u64();
        e.index = b.get_u64();
        e.data = get_bytes(b)?;
        e.context = get_bytes(b)?;
        list.push(e);
    }
    m.entries = list.into();
    need(b, 1)?;
    if b.get_u8() != 0 {
        let data = get_bytes(b)?;
        need(b, 16)?;
        let index = b.get_u64();
        let term = b.get_u64();
        let mut cs = ConfState {
            voters: get_ids(b)?,
            learners: get_ids(b)?,
            voters_outgoing: get_ids(b)?,
            learners_next: get_ids(b)?,
            ..ConfState::default()
        };
        need(b, 1)?;
        cs.auto_leave = b.get_u8() != 0;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(cs);
        let mut s = Snapshot {
            data,
            ..Snapshot::default()
        };
        s.set_metadata(meta);
        m.set_snapshot(s);
    }
    Ok(m)
}

fn need(b: &Bytes, n: usize) -> Result<(), WireError> {
    if b.remaining() < n {
        Err(WireError::Short)
    } else {
        Ok(())
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_u32(v.len() as u32);
    b.put_slice(v);
}

fn get_bytes(b: &mut Bytes) -> Result<Bytes, WireError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    need(b, n)?;
    Ok(b.split_to(n))
}

fn get_ids(b: &mut Bytes) -> Result<Vec<u64>, WireError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    if n > b.remaining() / 8 {
        return Err(WireError::Short);
    }
    Ok((0..n).map(|_| b.get_u64()).collect())
}

fn entry_type(t: u8) -> Result<EntryType, WireError> {
    Ok(match t {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        other => return Err(WireError::UnknownType(other)),
    })
}

fn message_type(t: u8) -> Result<MessageType, WireError> {
    use MessageType::*;
    const ALL: [MessageType; 19] = [
        MsgHup,
        MsgBeat,
        MsgPropose,
        MsgAppend,
        MsgAppendResponse,
        MsgRequestVote,
        MsgRequestVoteResponse,
        MsgSnapshot,
        MsgHeartbeat,
        MsgHeartbeatResponse,
        MsgUnreachable,
        MsgSnapStatus,
        MsgCheckQuorum,
        MsgTransferLeader,
        MsgTimeoutNow,
        MsgReadIndex,
        MsgReadIndexResp,
        MsgRequestPreVote,
        MsgRequestPreVoteResponse,
    ];
    ALL.iter()
        .copied()
        .find(|m| *m as u8 == t)
        .ok_or(WireError::UnknownType(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(seed: u64, entries: usize, snapshot: bool) -> Message {
        let mut m = Message {
            msg_type: message_type((seed % 19) as u8).unwrap(),
            to: seed,
            from: seed ^ 7,
            term: seed.wrapping_mul(3),
            log_term: seed / 2,
            index: seed.rotate_left(9),
            commit: seed.wrapping_add(11),
            commit_term: 5,
            request_snapshot: seed % 3,
            reject: seed % 2 == 0,
            reject_hint: !seed,
            priority: -(seed as i64),
            context: Bytes::from(vec![seed as u8; (seed % 5) as usize]),
            ..Message::default()
        };
        m.entries = (0..entries)
            .map(|i| Entry {
                entry_type: entry_type((i % 3) as u8).unwrap(),
                term: i as u64,
                index: seed + i as u64,
                data: Bytes::from(vec![i as u8; i * 3]),
                context: Bytes::from_static(b"ctx"),
                ..Entry::default()
            })
            .collect::<Vec<_>>()
            .into();
        if snapshot {
            let mut meta = SnapshotMetadata {
                index: 40,
                term: 4,
                ..SnapshotMetadata::default()
            };
            meta.set_conf_state(ConfState {
                voters: vec![1, 2, 3],
                learners: vec![9],
                auto_leave: true,
                ..ConfState::default()
            });
            let mut s = Snapshot {
                data: Bytes::from_static(b"image"),
                ..Snapshot::default()
            };
            s.set_metadata(meta);
            m.set_snapshot(s);
        }
        m
    }

    fn body(frame: &Bytes) -> Bytes {
        frame.slice(4..)
    }

    #[test]
    fn messages_come_back_as_they_went() {
        let sent = vec![
            message(1, 0, false),
            message(77, 3, true),
            message(18, 1, false),
        ];
        let frame = encode_frame(2, 9, &sent);
        assert!(is_raft_frame(&frame[4..]));
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(decode_frame(body(&frame)).unwrap(), sent);
    }

    #[test]
    fn counts_beyond_the_bytes_are_refused_before_allocating() {
        let frame = encode_frame(1, 0, &[message(3, 2, true)]);
        let mut huge = BytesMut::from(&frame[4..]);
        // The message count sits right after the header (10 + "conveyor-1").
        let at = 2 + 2 + 4 + 2 + "conveyor-1".len();
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_frame(huge.freeze()), Err(WireError::Short));
    }

    #[test]
    fn unknown_types_and_trailing_bytes_are_refused() {
        let frame = encode_frame(1, 0, &[message(3, 0, false)]);
        let mut bad = BytesMut::from(&frame[4..]);
        let at = 2 + 2 + 4 + 2 + "conveyor-1".len() + 4;
        bad[at] = 200;
        assert_eq!(decode_frame(bad.freeze()), Err(WireError::UnknownType(200)));
        let mut long = BytesMut::from(&frame[4..]);
        long.put_u8(0);
        assert_eq!(decode_frame(long.freeze()), Err(WireError::Trailing));
    }

    proptest! {
        #[test]
        fn any_cut_of_a_frame_is_refused_not_panicked(
            seed in any::<u64>(), entries in 0usize..4, snap in any::<bool>(), cut in any::<prop::sample::Index>()
        ) {
            let frame = encode_frame(1, 0, &[message(seed, entries, snap)]);
            let b = body(&frame);
            let at = cut.index(b.len());
            prop_assert!(decode_frame(b.slice(..at)).is_err());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut framed = BytesMut::new();
            framed.put_i16(RAFT_API_KEY);
            framed.put_i16(0);
            framed.put_i32(0);
            framed.put_i16(-1);
            framed.put_slice(&bytes);
            let _ = decode_frame(framed.freeze());
            let _ = decode_frame(Bytes::from(bytes));
        }
    }
}
