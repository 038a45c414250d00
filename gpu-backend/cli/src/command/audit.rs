//! `h200 audit verify`: walks the audit hash chain.

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
    }
}
