//! Types and security policies shared by the H200 edge and backend.
//!
//! Pure Rust with no I/O and no async runtime: it builds for native, `wasm32-unknown-unknown`
//! (Cloudflare Workers) and `wasm32-wasip2` (Spin). Anything that needs the outside world (time,
//! randomness, storage) comes in as an argument or through a small trait, so the edge runtimes and
//! the backend enforce the same math.
//!
//! One module per policy:
//!
//! - [`permissions`]: permission strings and the two seed role sets.
//! - [`route_policy`]: the route table (method + path pattern → permission, rate classes, body
//!   limit) as data, with an embedded TOML default an operator can replace.
//! - [`token`]: access and refresh tokens: claims and policy, verification against a JWKS
//!   (EdDSA, RS256, HS256), issue.
//! - [`api_key`]: the `ncs_` key format, its stored hash and the edge's revocation check.
//! - [`revocation`]: the deny-list entries (a token, a signing key, a subject's older tokens) of
//!   the backend's revocation feed and the check both sides apply.
//! - [`rate_limit`]: GCRA and the one compare-and-set loop every runtime runs (async, over any
//!   store), with the response header fields.
//! - [`headers`] and [`cors`]: the response hardening and the origin allow-list.
//! - [`upload`]: magic-byte sniffing and header-only dimensions of JPEG, PNG and WebP.
//! - [`body`]: strict request bodies with the limits of the public API, among them the NCS
//!   parameter overrides and their ranges, and the stored rule the backend and kernels share.
//! - [`signing`]: RFC 9421 message signatures (hmac-sha256) with RFC 9530 content digests.
//! - [`audit`]: audit event types and records with UUIDv7 ids.
//! - [`totp`]: RFC 6238 one-time codes for MFA.
//! - [`problem`]: RFC 9457 problem details and the stable error codes.
//! - [`openapi`]: the public API as an OpenAPI 3.1 document, generated from the route table and
//!   the body types (feature `openapi`) and committed as `shared/openapi.json`.

pub mod api_key;
pub mod audit;
pub mod body;
pub mod cors;
pub mod headers;
pub mod openapi;
pub mod permissions;
pub mod problem;
pub mod rate_limit;
pub mod revocation;
pub mod route_policy;
pub mod signing;
pub mod token;
pub mod totp;
pub mod upload;

pub use problem::{ErrorCode, Problem};
