//! `h200 apikey create`: prints a new `ncs_…` key once; only its digest is stored.

use anyhow::Context;
use gpu_backend::store::now_ms;
use shared::api_key::ApiKey;

use super::open_store;
use crate::cli::ApiKeyCommand;

/// Runs `h200 apikey …`.
pub async fn run(command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create {
            user,
            name,
            expires_in_days,
            store,
        } => {
            let db = open_store(&store).await?;
            let owner = db
                .user_by_username(&user)
                .await?
                .with_context(|| format!("no user named {user}"))?;
            let key = ApiKey::from_random(gpu_backend::keys::random_bytes::<16>()?);
            let expires = expires_in_days.map(|days| now_ms() + i64::from(days) * 86_400_000);
            let record = db
                .create_api_key(
                    &owner.id,
                    &name,
                    key.digest().as_str(),
                    &key.display_prefix(),
                    expires,
                )
                .await?;
            eprintln!(
                "created API key {} for {user}; it is shown only once:",
                record.id
            );
            println!("{}", key.as_str());
            Ok(())
        }
    }
}
