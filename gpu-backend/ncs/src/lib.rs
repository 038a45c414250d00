//! The NeuroCluster Streamer (NCS) kernels: adaptive streaming clustering with outlier scores.
//!
//! - [`exact`]: the algorithm of NCS.md point by point ([`NcsStream`]); its state serializes
//!   with serde and restores bit for bit. The algorithm itself is split by concern, each module
//!   depending only on those listed before it:
//!   `lanes` (the arithmetic, in eight fixed lanes), `ring` (the bounded histories), `cluster`
//!   (a cluster and its health), `state` (what persists between points), `search` (the nearest
//!   and most similar centroid), `maintenance` (every 50 points), `step` (one point).
//! - [`report`]: what a stream reports (cluster summaries, counters, global metrics);
//!   [`point`]: the answer for one point, or why it was refused.
//! - [`batched`]: the same stream driven a batch at a time, scoring the batch against the
//!   centroids with one candle matrix product ([`BatchedNcs`]).
//! - [`jsonl`]: the line-oriented entry point behind `h200 ncs` and the benches.
//! - [`kernel`]: the `ncs` job kind the queue's workers run; [`record`]: a stream's state as saved
//!   between jobs (the backend reads it for summaries); [`params`]: the algorithm's parameters.
//! - [`quality`]: the adjusted Rand index, to compare clusterings; [`synthetic`]: seeded
//!   Gaussian mixtures for tests and benches.
//!
//! Without the `kernel` feature (the backend's build) `batched`, `jsonl` and `kernel` are left
//! out, and with them candle.

#[cfg(feature = "kernel")]
pub mod batched;
mod cluster;
pub mod exact;
#[cfg(feature = "kernel")]
pub mod jsonl;
#[cfg(feature = "kernel")]
pub mod kernel;
mod lanes;
mod maintenance;
pub mod params;
pub mod point;
pub mod quality;
pub mod record;
pub mod report;
mod ring;
mod search;
mod state;
mod step;
pub mod synthetic;

#[cfg(feature = "kernel")]
pub use batched::{BatchError, BatchedNcs};
pub use exact::NcsStream;
#[cfg(feature = "kernel")]
pub use jsonl::{Mode, RunError, RunStats, run_jsonl, run_jsonl_on};
pub use params::{AlgorithmOverrides, AlgorithmParams, ParamsError};
pub use point::{NcsError, PointResult};
pub use quality::adjusted_rand_index;
pub use record::StreamRecord;
pub use report::{ClusterSummary, GlobalMetrics, HealthStatus, StreamStats};
