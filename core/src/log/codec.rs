//! The four record codecs, for the few places the broker must look inside
//! a compressed batch or write one: a compacted topic's key check, a
//! topic-level `compression.type` that differs from the producer's, and the
//! log cleaner. Everything else stores and sends batches as they came.
//!
//! Decompression is bounded: a batch that inflates past the caller's limit
//! is refused, whatever its header claims, so a small request cannot make
//! the broker allocate gigabytes.

use std::io::{Read, Write};

/// A batch's compression codec (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Uncompressed.
    None = 0,
    /// gzip (one or more members).
    Gzip = 1,
    /// Snappy, in the xerial framing Kafka's Java client writes, or raw.
    Snappy = 2,
    /// The LZ4 frame format.
    Lz4 = 3,
    /// Zstandard.
    Zstd = 4,
}

impl Codec {
    /// The codec a batch's attributes name; `None` for an unknown one.
    pub fn from_attributes(attributes: i16) -> Option<Codec> {
        Some(match attributes & 0x07 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    /// Kafka's name for it (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "uncompressed",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Compression levels (`compression.gzip.level`, `compression.lz4.level`,
/// `compression.zstd.level`), as Kafka defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// 1–9, or -1 for the codec's default (6).
    pub gzip: i32,
    /// 1–17.
    pub lz4: u32,
    /// -131072–22.
    pub zstd: i32,
}

impl Default for Levels {
    fn default() -> Self {
        Self {
            gzip: -1,
            lz4: 9,
            zstd: 3,
        }
    }
}

/// Why a payload could not be decompressed or compressed.
pub type CodecError = &'static str;

const TOO_LARGE: CodecError = "decompressed records exceed the broker's limit";
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

/// The records of a batch body compressed with `codec`, at most `limit`
/// bytes of them.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    match codec {
        Codec::None => {
            if data.len() > limit {
                return Err(TOO_LARGE);
            }
            Ok(data.to_vec())
        }
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit, "bad gzip"),
        Codec::Lz4 => {
            let d = lz4::Decoder::new(data).map_err(|_| "bad lz4 frame")?;
            read_bounded(d, limit, "bad lz4 frame")
        }
        Codec::Zstd => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|_| "bad zstd frame")?;
            read_bounded(d, limit, "bad zstd frame")
        }
        Codec::Snappy => snappy_decompress(data, limit),
    }
}

fn read_bounded(r: impl Read, limit: usize, bad: CodecError) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut out).map_err(|_| bad)?;
    if out.len() > limit {
        return Err(TOO_LARGE);
    }
    Ok(out)
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    const BAD: CodecError = "bad snappy data";
    let mut out = Vec::new();
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
        let n = snap::raw::decompress_len(block).map_err(|_| BAD)?;
        if n > limit.saturating_sub(out.len()) {
            return Err(TOO_LARGE);
        }
        let at = out.len();
        out.resize(at + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[at..])
            .map_err(|_| BAD)?;
        Ok(())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(XERIAL_HEADER_LEN..).ok_or(BAD)?;
    while !rest.is_empty() {
        let len = rest.get(..4).ok_or(BAD)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let block = rest.get(4..4 + len).ok_or(BAD)?;
        raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// `data` compressed with `codec` at `levels`.
pub fn compress(codec: Codec, levels: Levels, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let level = match levels.gzip {
                -1 => flate2::Compression::default(),
                l => flate2::Compression::new(l.clamp(1, 9) as u32),
            };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(data).map_err(|_| "gzip failed")?;
            e.finish().map_err(|_| "gzip failed")
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(levels.lz4)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(|_| "lz4 failed")?;
            e.write_all(data).map_err(|_| "lz4 failed")?;
            let (out, result) = e.finish();
            result.map_err(|_| "lz4 failed")?;
            Ok(out)
        }
        Codec::Zstd => zstd::stream::encode_all(data, levels.zstd).map_err(|_| "zstd failed"),
        Codec::Snappy => {
            // The xerial framing Kafka's Java producer writes; every client
            // reads it.
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes()); // version
            out.extend_from_slice(&1u32.to_be_bytes()); // minimum compatible version
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK) {
                let compressed = encoder.compress_vec(block).map_err(|_| "snappy failed")?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let packed = compress(codec, Levels::default(), &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert_eq!(Codec::from_attributes(codec as i16), Some(codec));
        }
        assert_eq!(Codec::from_attributes(5), None);
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        for codec in ALL {
            let packed = compress(codec, Levels::default(), &zeros).unwrap();
            assert_eq!(
                decompress(codec, &packed, 4096),
                Err(TOO_LARGE),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_and_garbage() {
        let data = b"hello hello hello hello".to_vec();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Codec::Snappy, &raw, 1 << 10).unwrap(), data);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            assert!(decompress(codec, b"\x82SNAPPY\x00 not really", 1 << 20).is_err());
            assert!(
                decompress(codec, &[0xff; 64], 1 << 20).is_err(),
                "{codec:?}"
            );
        }
    }
}
