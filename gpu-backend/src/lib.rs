//! The H200 backend: it trusts only requests signed by the edge, keeps state with sqlx, queues jobs
//! that GPU workers pull, and runs the candle kernels.

pub use shared;

pub mod ncs;
