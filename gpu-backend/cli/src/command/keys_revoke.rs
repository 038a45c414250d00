//! `h200 keys revoke KID`: the emergency revocation of a token signing key.

use std::path::Path;

use gpu_backend::auth::token_keys::revoke_signing_key;

use super::open_store;
use crate::cli::StoreArgs;

/// Revokes the token signing key `kid` in the store the arguments name and in the key file of
/// their data folder, and prints what happened.
pub async fn run(kid: &str, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_store(store).await?;
    let report = revoke_signing_key(&db, Path::new(&store.data_dir), kid).await;
    db.close().await;
    for line in report? {
        println!("{line}");
    }
    Ok(())
}
