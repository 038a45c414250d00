//! The H200 gateway: one platform-free request pipeline and thin adapters per runtime.
//!
//! Layout:
//!
//! - [`ports`]: the small traits a runtime provides (clock, entropy, rate store, edge state,
//!   upstream, audit sink, request body), with the [`ports::MaybeSend`] marker that is `Send` on
//!   native and nothing on wasm32.
//! - [`message`]: the runtime-neutral request and response.
//! - [`console`]: the web console's built assets, embedded, answered at `/` on every runtime.
//! - [`config`]: the one typed [`config::EdgeConfig`] every adapter hands the pipeline.
//! - [`stage`]: one module per pipeline stage (request id, response headers, CORS, intrusion
//!   check and its counters, authentication, authorization, rate limit, body validation,
//!   signing, audit); each enforces a policy of [`shared`] and never re-implements it.
//! - [`pipeline`]: the stages in order, from a request to a response.
//! - [`backend_sync`]: the edge's own calls to the backend (JWKS, revocation feed, API-key
//!   grants) and how their answers land in the edge state.
//! - [`upkeep`]: the one schedule of background upkeep (revocation sync, JWKS refresh, pruning)
//!   that every runtime drives and none re-states.
//! - [`settings`]: the named settings of the wasm runtimes (Cloudflare vars, Spin variables)
//!   turned into that config.
//! - [`fanout`]: audit delivery (signed ingest batches, the signed webhook) and the buffer the
//!   wasm runtimes drain after each response.
//! - [`memory`]: in-process state (rate buckets, deny-list, IP blocks, caches) for the native
//!   server and single-isolate runtimes.
//! - [`stream_ticket`]: the sealed, single-use tickets that open a stream's WebSocket; the
//!   socket's admission and per-message checks are methods of the pipeline
//!   (`pipeline/stream_socket.rs`).
//! - [`token_cache`]: access tokens whose signature already verified, so a repeated token skips
//!   the signature check (never the time checks or the deny-list).
//!
//! The runtime adapters are crates of their own beside this one: `edge/native` (axum, for local
//! runs, tests and containers), `edge/worker` (Cloudflare Workers) and `edge/spin` (Spin).

pub mod backend_sync;
pub mod config;
pub mod console;
pub mod fanout;
pub mod memory;
pub mod message;
pub mod pipeline;
pub mod ports;
pub mod settings;
pub mod stage;
pub mod stream_ticket;
pub mod token_cache;
pub mod upkeep;

#[cfg(test)]
mod testing;

pub use config::EdgeConfig;
pub use message::{EdgeRequest, EdgeResponse};
pub use pipeline::Pipeline;
pub use shared;
