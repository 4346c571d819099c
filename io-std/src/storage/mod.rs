//! The storage system calls every runtime shares, written once: the
//! sequential segment writer and its fsync worker ([`segment`]), the
//! threads it hands slow commands to ([`workers`]), the
//! sendfile fetcher ([`send`]), and the data directory's scan, lock and
//! file naming ([`disk`]).

pub(crate) mod disk;
pub(crate) mod segment;
pub(crate) mod send;
pub(crate) mod workers;
