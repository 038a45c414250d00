//! `h200 user add`: adds a user; the password comes from standard input.

use std::io::BufRead;

use anyhow::{Context, bail};
use gpu_backend::auth::password::{PasswordHasher, check_policy};
use gpu_backend::keys::{BackendKeys, KeyOverrides};
use gpu_backend::store::now_ms;
use gpu_backend::store::users::NewUser;
use shared::permissions::RoleSet;

use super::open_store;
use crate::cli::{StoreArgs, UserCommand};

/// Runs `h200 user …`.
pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            roles,
            email,
            store,
            seal_keys,
        } => {
            let seal_keys = seal_keys.map(|keys| keys.0);
            add_user(&name, &roles, email.as_deref(), &store, seal_keys).await
        }
    }
}

async fn add_user(
    name: &str,
    roles: &[String],
    email: Option<&str>,
    store: &StoreArgs,
    seal_keys: Option<String>,
) -> anyhow::Result<()> {
    let known = RoleSet::default();
    for role in roles {
        if known.role(role).is_none() {
            bail!(
                "unknown role {role}; known roles: {}",
                known.names().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    check_policy(password).map_err(|e| anyhow::anyhow!("password refused: {e}"))?;
    let db = open_store(store).await?;
    let overrides = KeyOverrides {
        edge_keys: None,
        seal_keys,
    };
    let (keys, _) = BackendKeys::load_or_generate(&store.data_dir, &overrides, now_ms())?;
    let hash = PasswordHasher::new()
        .hash(password)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let user = db
        .create_user(NewUser {
            username: name,
            password_hash: &hash,
            roles,
            email_sealed: None,
        })
        .await
        .with_context(|| format!("creating user {name}"))?;
    if let Some(email) = email {
        let sealed = keys
            .seal
            .seal(
                &gpu_backend::http::admin::email_context(&user.id),
                email.as_bytes(),
            )
            .map_err(|e| anyhow::anyhow!("sealing the email: {e}"))?;
        db.update_sealed_fields(&user.id, Some(&sealed), None)
            .await?;
        let entry = gpu_backend::auth::email_index::entry(&keys.seal, email);
        db.set_email_index(&user.id, Some(&entry)).await?;
    }
    println!("{}", user.id);
    eprintln!("added user {name} with roles {}", roles.join(", "));
    Ok(())
}
