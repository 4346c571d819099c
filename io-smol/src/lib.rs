//! Conveyor on the smol runtime.
//!
//! Not built yet: the smol adapter is the runtimes issue's work. This crate
//! exists so the workspace has its final shape and the core's contract is
//! checked against every adapter that will drive it.
