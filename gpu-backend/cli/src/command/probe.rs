//! `h200 probe URL`: the health check of containers, whose image has no shell and no curl.
//! Exits 0 when the URL answers 2xx in time, non-zero otherwise.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// `h200 probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// What to ask, e.g. `http://127.0.0.1:8081/health`.
    pub url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
    /// PEM CA certificate(s) to trust for an `https://` URL besides the public roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// Asks once; an error unless the answer is 2xx.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(args.timeout_secs.max(1)));
    if let Some(path) = &args.ca {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).context("the CA file")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().context("building the HTTP client")?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .with_context(|| format!("asking {}", args.url))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{} answered {status}", args.url);
    }
    println!("{} answered {status}", args.url);
    Ok(())
}
