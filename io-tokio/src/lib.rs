//! Conveyor on the tokio runtime.
//!
//! Not built yet: the tokio adapter is the runtimes issue's work. This crate
//! exists so the workspace has its final shape and the core's contract is
//! checked against every adapter that will drive it.
