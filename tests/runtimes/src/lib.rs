//! The edge runtimes served from this checkout, for `h200 dev --edge worker|spin` and the
//! end-to-end tests: [`tools`] installs the pinned tools from the registries, [`serve`] builds the
//! Worker and the Spin component when stale and serves them (Miniflare configured from
//! `wrangler.toml`, `wasmtime serve` from `spin.toml`), [`front`] stands where the platform stands
//! in front of them and sets the client's address as it would, [`process`] holds the children.

pub mod front;
pub mod process;
pub mod serve;
pub mod tools;
