//! A connection's read buffer: where the next `read` goes.
//!
//! Frames are cut off the front of the buffer without copying
//! ([`conveyor_core::protocol::cut_frame`]), so each frame keeps the
//! allocation it was read into alive until the broker is done with it
//! (until its appends complete, for a Produce). `cut_frame` reserves room
//! for the whole of a frame whose length it has seen, exactly; reading into
//! that room, rather than growing the buffer by a fixed chunk past it, keeps
//! a frame's allocation the size of the frame: growing a `BytesMut` past its
//! capacity doubles it, and each large frame then held twice its size while
//! queued (most of the broker's heap under a produce load).

use std::io;

use bytes::BytesMut;

/// Bytes a read asks for when nothing more is known about what comes next.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Read once from `read` into `buf`'s spare room, at most [`READ_CHUNK`]
/// bytes (making that much room when it has none): the bytes read are
/// appended. Returns what `read` returned; on an error `buf` is as it was.
pub(crate) fn read_into(
    buf: &mut BytesMut,
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    let len = buf.len();
    if buf.capacity() == len {
        buf.reserve(READ_CHUNK);
    }
    // The room a frame's reservation left (or a fresh chunk), zeroed so it
    // can be handed to `read` as a slice; one chunk at a time, so a large
    // reservation is not zeroed again on every read.
    let room = (buf.capacity() - len).min(READ_CHUNK);
    buf.resize(len + room, 0);
    let r = read(&mut buf[len..]);
    buf.truncate(len + *r.as_ref().unwrap_or(&0));
    r
}

/// Bytes a connection must have read for its end to trim the allocator
/// ([`release_free_memory`]).
pub(crate) const TRIM_AFTER_BYTES: u64 = 1 << 20;

/// Give the allocator's free memory back to the system. With glibc, each
/// thread allocates from an arena of its own (up to 8 per core), and an
/// arena keeps what is freed inside it resident: in the `threads` runtime a
/// connection's reader thread reads every frame of that connection into its
/// arena, so each connection that carried a produce load left up to
/// `queued.max.request.bytes` resident behind it, and the next connection's
/// arena grew on top (threads runtime, bench matrix: peak RssAnon 72 MiB with
/// the default arenas, 37 MiB with MALLOC_ARENA_MAX=2). Called when such a
/// connection ends; a no-op elsewhere.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim(3) takes no pointers, only frees pages that
        // are free in the allocator's bookkeeping, and locks each arena.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The core's `cut_frame` (not public), as far as buffers go: a frame
    /// whose length is known and not all read reserves room for the rest.
    fn cut_frame(buf: &mut BytesMut) -> Option<Bytes> {
        if buf.len() < 4 {
            return None;
        }
        let len = 4 + u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if buf.len() < len {
            buf.reserve(len - buf.len());
            return None;
        }
        Some(buf.split_to(len).freeze())
    }

    /// A 1 MiB frame read in 64 KiB pieces ends in an allocation of its own
    /// size, not double it.
    #[test]
    fn a_large_frame_is_read_into_its_exact_reservation() {
        let body = 1 << 20;
        let mut wire = Vec::new();
        wire.extend_from_slice(&(body as i32).to_be_bytes());
        wire.resize(4 + body, 7);
        wire.extend_from_slice(&[0, 0, 0, 20]); // the next frame's prefix
        let mut at = 0;
        let mut buf = BytesMut::new();
        let frame = loop {
            let n = read_into(&mut buf, |room| {
                let n = room.len().min(READ_CHUNK).min(wire.len() - at);
                room[..n].copy_from_slice(&wire[at..at + n]);
                at += n;
                Ok(n)
            })
            .unwrap();
            assert!(n > 0);
            match cut_frame(&mut buf) {
                Some(f) => break f,
                None => assert!(buf.capacity() <= 4 + body + READ_CHUNK),
            }
        };
        assert_eq!(frame.len(), 4 + body);
        assert!(buf.capacity() < READ_CHUNK);
    }

    #[test]
    fn an_error_leaves_the_buffer_as_it_was() {
        let mut buf = BytesMut::from(&b"abc"[..]);
        let r = read_into(&mut buf, |_| Err(io::ErrorKind::WouldBlock.into()));
        assert!(r.is_err());
        assert_eq!(&buf[..], b"abc");
    }
}
