//! The drivers: the same [`crate::host::Host`] (broker and connection
//! table) run by a thread per connection ([`threads`]), by one mio event
//! loop ([`mio_loop`]), or by one drive loop for async runtimes
//! ([`async_drive`]).

pub mod async_drive;
pub(crate) mod mio_loop;
pub(crate) mod threads;
