//! The H200 backend: it trusts only requests signed by the edge, keeps state with sqlx, queues jobs
//! that GPU workers pull, and runs the candle kernels.
//!
//! Layout, from the wire inwards:
//!
//! - [`http`]: the axum router. [`http::gate`] verifies every request's RFC 9421 signature before
//!   any handler runs; handlers translate HTTP to calls on the services and back.
//! - [`auth`]: passwords, the token issuer and its keys (rotation, revocation), and the deny-list
//!   the backend enforces itself.
//! - [`queue`]: the workers that pull jobs from the store's queue and run them on the kernels
//!   they are given (the trait and job contracts live in the `h200-kernel` crate).
//! - [`store`]: sqlx over SQLite (default) or Postgres, one set of queries for both.
//! - [`keys`] and [`seal`]: key material in the data folder, and secrets sealed at rest.
//! - [`config`]: the plain [`config::BackendConfig`]; [`server`] starts the backend from it and a
//!   list of kernels; [`metrics`]: the Prometheus registry.
//!
//! This library reads no flags and no environment: the `h200` binary (`gpu-backend/cli`) is the
//! composition root that builds the config and the kernels (`h200-ncs`, `h200-mug`) and hands
//! them in. It reads the mug and NCS crates only for their candle-free result types and rules.

pub mod auth;
pub mod config;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod queue;
pub mod replay;
pub mod seal;
pub mod server;
pub mod store;

pub use shared;
