//! The token keys in force: the key file in the data folder minus the signing keys the store
//! has revoked, reloaded when either changes; and the emergency revocation of one key
//! (`h200 keys revoke`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, bail};
use shared::audit::{AuditEvent, AuditEventType, AuditSource, Severity};
use shared::revocation::{RevocationKind, RevokedTarget};
use shared::token::TokenPolicy;

use super::tokens::TokenIssuer;
use crate::http::AppState;
use crate::keys::{KeyPaths, RETIRED_KEY_PUBLISH_MS, TokenKeyRing, read_json, revoke_key_file};
use crate::store::{Store, now_ms};

/// The file's modification time and length: what tells a rewrite apart.
type FileStamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// What the issuer in force was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Loaded {
    stamp: FileStamp,
    revoked: Vec<String>,
}

/// The token key file a running backend follows, and what it last built its issuer from.
#[derive(Debug)]
pub struct TokenKeyFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl TokenKeyFile {
    /// The key file of `data_dir`, as loaded now with `revoked` left out.
    pub fn new(data_dir: &Path, revoked: Vec<String>) -> TokenKeyFile {
        let path = KeyPaths::new(data_dir).token();
        let loaded = Loaded {
            stamp: stamp(&path),
            revoked,
        };
        TokenKeyFile {
            path,
            loaded: Mutex::new(loaded),
        }
    }

    fn loaded(&self) -> Loaded {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// An issuer over `ring` without the `revoked` keys.
pub fn issuer(
    policy: TokenPolicy,
    ring: &TokenKeyRing,
    revoked: &[String],
    now_ms: i64,
) -> anyhow::Result<TokenIssuer> {
    TokenIssuer::new(policy, &ring.without(revoked), now_ms)
        .context("no token signing key is left that is not revoked (h200 keys rotate adds one)")
}

/// Builds a new issuer when the key file changed or the store revoked another key since the
/// last load, or always with `force`; says whether it swapped the issuer. A file that cannot be
/// used leaves the keys in force as they are and reports why. Without a key file (a state built
/// by hand) nothing happens.
pub async fn reload(state: &AppState, force: bool) -> anyhow::Result<bool> {
    let Some(file) = &state.token_key_file else {
        return Ok(false);
    };
    let revoked = state.store.revoked_key_ids().await?;
    let now = Loaded {
        stamp: stamp(&file.path),
        revoked,
    };
    if !force && now == file.loaded() {
        return Ok(false);
    }
    let ring: TokenKeyRing =
        read_json(&file.path)?.with_context(|| format!("{} is missing", file.path.display()))?;
    let policy = state.tokens().policy().clone();
    let issuer = issuer(policy, &ring, &now.revoked, now_ms())?;
    *state.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(issuer);
    *file.loaded.lock().unwrap_or_else(|p| p.into_inner()) = now;
    Ok(true)
}

/// The issuer to sign new tokens with: the one in force, unless the store has revoked its
/// signing key; then the key file is loaded again first, so a login right after
/// `h200 keys revoke` gets a token under the new key. Fails while no unrevoked key signs.
pub async fn signing_issuer(state: &AppState) -> anyhow::Result<Arc<TokenIssuer>> {
    let issuer = state.tokens();
    let revoked = state.store.revoked_key_ids().await?;
    if !revoked.iter().any(|kid| kid == issuer.current_kid()) {
        return Ok(issuer);
    }
    reload(state, true).await?;
    let issuer = state.tokens();
    if revoked.iter().any(|kid| kid == issuer.current_kid()) {
        bail!("token signing key {} is revoked", issuer.current_kid());
    }
    Ok(issuer)
}

/// `h200 keys revoke KID`: records the revocation of the token signing key `kid` in the store
/// (the backend refuses its tokens at once, every edge within 60 s through the revocation feed)
/// and removes the key from the key file (out of the JWKS at once; a fresh signing key first
/// when it was the one signing). Returns what happened, one line each. Running it again after
/// a failure finishes the job.
pub async fn revoke_signing_key(
    store: &Store,
    data_dir: &Path,
    kid: &str,
) -> anyhow::Result<Vec<String>> {
    let path = KeyPaths::new(data_dir).token();
    let ring: TokenKeyRing = read_json(&path)?.unwrap_or_default();
    let recorded = store.revoked_key_ids().await?;
    if !ring.contains(kid) && !recorded.iter().any(|k| k == kid) {
        bail!(
            "no token signing key has kid {kid:?} (the kids are in {} and the JWKS)",
            path.display()
        );
    }
    let target = RevokedTarget {
        kind: RevocationKind::SigningKey,
        id: kid.to_owned(),
    };
    // Recorded first: should rewriting the file fail, the key is refused all the same and a
    // second run finds it recorded and finishes.
    store
        .revoke(&target, None, now_ms() + RETIRED_KEY_PUBLISH_MS)
        .await
        .context("recording the revocation")?;
    // A compromised signing key is the gravest event the trail records: critical.
    let mut event = AuditEvent::new(
        AuditEventType::ConfigurationChange,
        AuditSource::Backend,
        now_ms() as u64,
        crate::http::gate::random_tail(),
    )
    .with_detail(&format!("token signing key {kid} revoked"));
    event.severity = Severity::Critical;
    store
        .append_audit(&[event])
        .await
        .context("recording the revocation in the audit trail")?;
    let mut report = vec![format!(
        "token signing key {kid} revoked: the backend refuses its tokens now, every edge within 60 s"
    )];
    let file = revoke_key_file(data_dir, kid)?;
    report.push(if file.removed {
        format!("removed {kid} from {} and from the JWKS", path.display())
    } else {
        format!("{kid} was no longer in {}", path.display())
    });
    if let Some(fresh) = file.new_signing_kid {
        report.push(format!(
            "new token signing key {fresh} (a running backend signs with it from its next token on)"
        ));
    }
    Ok(report)
}
