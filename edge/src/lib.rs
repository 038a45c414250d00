//! The H200 gateway: one platform-free request pipeline and thin adapters per runtime.
//!
//! The pipeline stages (request id, headers, CORS, intrusion check, authentication, authorization,
//! rate limiting, validation, signing, audit) enforce the policies of [`shared`]; the adapters for
//! Cloudflare Workers, Spin and the native axum server only translate requests and state.

pub use shared;
