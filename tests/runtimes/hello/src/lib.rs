//! Bench-only: the smallest handler of each runtime, answering `200 ok` to everything, built
//! with the same SDKs and profile as the gateway so the difference is the gateway's own work.
//! A Worker on `wasm32-unknown-unknown` (`worker-build --release` here), a Spin component on
//! `wasm32-wasip2`; empty on native targets.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod cloudflare {
    use worker::{Context, Env, Request, Response, Result, event};

    #[event(fetch)]
    async fn fetch(_request: Request, _env: Env, _ctx: Context) -> Result<Response> {
        Response::ok("ok")
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod spin {
    use spin_sdk::http::{IntoResponse, Request, Response};
    use spin_sdk::http_component;

    #[http_component]
    fn hello(_request: Request) -> impl IntoResponse {
        Response::new(200, "ok")
    }
}
