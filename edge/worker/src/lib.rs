//! The H200 gateway as a Cloudflare Worker: the platform-free `edge` pipeline with rate-limit,
//! deny-list and intrusion state in a Durable Object, the JWKS and API-key caches in isolate
//! memory, the backend over `fetch`, and audit fan-out through `wait_until`.
//!
//! Layout: [`durable`] holds the Durable Object and the ports over it, [`runtime`] the clock,
//! randomness and the `fetch` upstream, [`entry`] the fetch handler that wires them together.
//! The crate is empty on native targets, so workspace builds and tests pass there.

#[cfg(target_arch = "wasm32")]
mod durable;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod runtime;
