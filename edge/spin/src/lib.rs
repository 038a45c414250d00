//! The H200 gateway as a Spin component (`wasi:http` 0.2 via `spin-sdk` 5.2): the platform-free
//! `edge` pipeline with its state in Spin key-value, its settings in Spin variables, and the
//! backend over Spin's outbound HTTP (allowed only to the configured host by `spin.toml`).
//!
//! Layout: [`kv`] holds the ports over key-value, [`runtime`] the clock, randomness, outbound
//! HTTP and the request body, [`entry`] the HTTP handler. The crate is empty on native targets,
//! so workspace builds and tests pass there.

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod kv;
#[cfg(target_arch = "wasm32")]
mod runtime;
