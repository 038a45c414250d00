//! `h200 audit verify` walks the audit hash chain; `h200 audit report` prints the compliance
//! report of a window.

use anyhow::bail;

use super::open_store;
use crate::cli::AuditCommand;

/// Runs `h200 audit …`; fails when the chain is broken.
pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { store } => {
            let db = open_store(&store).await?;
            match db.verify_audit_chain().await {
                Ok(rows) => {
                    println!("audit chain intact: {rows} events");
                    Ok(())
                }
                Err(e) => bail!("audit chain broken: {e}"),
            }
        }
        AuditCommand::Report {
            from,
            to,
            format,
            store,
        } => {
            let to = to.unwrap_or_else(gpu_backend::store::now_ms);
            let from =
                from.unwrap_or(to.saturating_sub(gpu_backend::http::report::DEFAULT_WINDOW_MS));
            if from >= to {
                bail!("--from must be before --to");
            }
            let db = open_store(&store).await?;
            let report = db.access_report(from, to).await?;
            db.close().await;
            if format == "csv" {
                print!("{}", report.to_csv());
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
    }
}
