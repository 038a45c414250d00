//! The H200 backend: it trusts only requests signed by the edge, keeps state with sqlx, queues jobs
//! that GPU workers pull, and runs the candle kernels.
//!
//! Layout, from the wire inwards:
//!
//! - [`http`]: the axum router. [`http::gate`] verifies every request's RFC 9421 signature before
//!   any handler runs; handlers translate HTTP to calls on the services and back.
//! - [`auth`]: users, passwords, tokens, MFA and API keys.
//! - [`queue`]: the kernel trait and the workers that pull jobs from the store's queue.
//! - [`store`]: sqlx over SQLite (default) or Postgres, one set of queries for both.
//! - [`keys`] and [`seal`]: key material in the data folder, and secrets sealed at rest.
//! - [`mug`]: the Mug Positioning kernel: YOLOv8 detector, positioning, placement rules.
//! - [`rng`]: the seeded generator of the synthetic test data and training scenes.
//! - [`cli`]: the `h200` command (`src/bin/h200.rs` is only its entry point); [`edge`] and
//!   [`dev`] start the native edge gateway and the whole system on one machine; [`bench_edge`]
//!   measures the edge pipeline against a plain proxy.

pub mod auth;
pub mod bench_edge;
pub mod cli;
pub mod config;
pub mod dev;
pub mod edge;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod mug;
pub mod queue;
pub mod rng;
pub mod seal;
pub mod server;
pub mod store;

pub use shared;

pub mod ncs;
