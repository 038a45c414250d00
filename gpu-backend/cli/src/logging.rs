//! Logs on standard error, as text or JSON lines; `RUST_LOG` filters (default `info`). Colours
//! only when standard error is a terminal. The backend's access log (one line per request) is at
//! `debug` under the target `h200::access`: `RUST_LOG=info,h200::access=debug` turns it on.

use std::io::IsTerminal;

use crate::cli::LogFormat;

/// Sets up logging in the chosen format.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
