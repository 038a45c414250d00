//! `h200 keys rotate`: new key material beside the old. `h200 keys revoke` lives in
//! [`super::keys_revoke`].

use crate::cli::KeysCommand;

/// Runs `h200 keys …`.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Revoke { kid, store } => super::keys_revoke::run(&kid, &store).await,
        KeysCommand::Rotate {
            data_dir,
            edge,
            seal,
        } => {
            for line in gpu_backend::keys::rotate_key_files(&data_dir, edge, seal)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}
