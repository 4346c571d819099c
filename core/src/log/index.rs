//! Kafka's offset index (8-byte entries: u32 offset relative to the segment
//! base, u32 log position) and time index (12-byte entries: i64 timestamp,
//! u32 relative offset), both big-endian, over byte slices.
