//! `h200 keys rotate`: new key material beside the old.

use crate::cli::KeysCommand;

/// Runs `h200 keys …`.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
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
