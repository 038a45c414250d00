//! `h200 edge`: the native edge gateway (the public API) in front of a backend.

use anyhow::Context;
use edge_native::args::EdgeArgs;
use gpu_backend::server::shutdown_signal;

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let edge = args.bind().await?;
    edge.serve(shutdown_signal())
        .await
        .context("serving the edge")
}
