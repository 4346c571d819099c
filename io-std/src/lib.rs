//! The Conveyor runtime on blocking threads.
