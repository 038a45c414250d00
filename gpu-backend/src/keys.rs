//! Key material of the backend, in the data folder (mode 0600) or the environment: the token
//! signing keys, the edge-to-backend HMAC keys and the seal keys. First start generates whatever
//! is missing and says where.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// How long a retired token key stays published: the longest a token it signed can live
/// (a refresh token, 7 days) plus the verification leeway.
pub const RETIRED_KEY_PUBLISH_MS: i64 = (7 * 24 * 3600 + 60) * 1000;

/// One Ed25519 token signing key.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenKeyMaterial {
    pub kid: String,
    /// The 32-byte Ed25519 seed, hex.
    pub seed: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub retired_at_ms: Option<i64>,
}

impl std::fmt::Debug for TokenKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeyMaterial")
            .field("kid", &self.kid)
            .field("retired_at_ms", &self.retired_at_ms)
            .finish_non_exhaustive()
    }
}

impl TokenKeyMaterial {
    pub fn seed_bytes(&self) -> anyhow::Result<[u8; 32]> {
        hex::decode(&self.seed)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("token key {} has a malformed seed", self.kid))
    }
}

/// The token key file: the newest unretired key signs; retired ones are only published.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenKeyRing {
    pub keys: Vec<TokenKeyMaterial>,
}

impl TokenKeyRing {
    /// The key that signs new tokens.
    pub fn current(&self) -> Option<&TokenKeyMaterial> {
        self.keys.iter().rev().find(|k| k.retired_at_ms.is_none())
    }

    /// Keys to publish in the JWKS at `now_ms`: the current one and retired ones whose tokens
    /// may still be alive.
    pub fn published(&self, now_ms: i64) -> impl Iterator<Item = &TokenKeyMaterial> {
        self.keys.iter().filter(move |k| {
            k.retired_at_ms
                .is_none_or(|at| now_ms - at < RETIRED_KEY_PUBLISH_MS)
        })
    }

    /// Adds a fresh key, retires the others, and forgets keys no longer worth publishing.
    pub fn rotate(&mut self, now_ms: i64) -> anyhow::Result<&TokenKeyMaterial> {
        for key in &mut self.keys {
            key.retired_at_ms.get_or_insert(now_ms);
        }
        self.keys.retain(|k| {
            k.retired_at_ms
                .is_none_or(|at| now_ms - at < RETIRED_KEY_PUBLISH_MS)
        });
        self.keys.push(new_token_key(now_ms)?);
        Ok(self
            .keys
            .last()
            .expect("a key was just pushed; this is a bug"))
    }

    /// Whether the ring holds the key `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Removes the key `kid` for good: its public key leaves the JWKS at once and its seed is
    /// gone. When it was the key that signs, a fresh key takes its place first, so issuing goes
    /// on. Returns the fresh key's kid, if one was made.
    pub fn revoke(&mut self, kid: &str, now_ms: i64) -> anyhow::Result<Option<String>> {
        let replacement = if self.current().is_some_and(|k| k.kid == kid) {
            let key = new_token_key(now_ms)?;
            let fresh = key.kid.clone();
            self.keys.push(key);
            Some(fresh)
        } else {
            None
        };
        self.keys.retain(|k| k.kid != kid);
        Ok(replacement)
    }

    /// The ring without the keys named in `revoked`.
    pub fn without(&self, revoked: &[String]) -> TokenKeyRing {
        TokenKeyRing {
            keys: self
                .keys
                .iter()
                .filter(|k| !revoked.contains(&k.kid))
                .cloned()
                .collect(),
        }
    }
}

use shared::signing::key_list::parse_key_list;
pub use shared::signing::key_list::{EdgeKeyMaterial, EdgeKeyRing};

/// Seal keys by version.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SealKeyFile {
    pub keys: Vec<SealKeyMaterial>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SealKeyMaterial {
    pub version: u32,
    /// Base64 of the 32-byte AES-256 key.
    pub key: String,
}

impl SealKeyFile {
    pub fn to_seal_keys(&self) -> anyhow::Result<crate::seal::SealKeys> {
        let pairs = self
            .keys
            .iter()
            .map(|k| {
                Ok((
                    k.version,
                    B64.decode(k.key.trim()).context("seal key is not base64")?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        crate::seal::SealKeys::new(pairs).context("invalid seal keys")
    }

    /// Adds a key one version above the newest.
    pub fn rotate(&mut self) -> anyhow::Result<u32> {
        let version = self.keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
        self.keys.push(SealKeyMaterial {
            version,
            key: B64.encode(random_bytes::<32>()?),
        });
        Ok(version)
    }
}

/// All key material the backend runs with.
#[derive(Debug, Clone)]
pub struct BackendKeys {
    pub token: TokenKeyRing,
    pub edge: EdgeKeyRing,
    pub seal: crate::seal::SealKeys,
}

/// Where each key file lives inside the data folder.
pub struct KeyPaths {
    pub dir: PathBuf,
}

impl KeyPaths {
    pub fn new(data_dir: &Path) -> KeyPaths {
        KeyPaths {
            dir: data_dir.join("keys"),
        }
    }
    pub fn token(&self) -> PathBuf {
        self.dir.join("token-signing.json")
    }
    pub fn edge(&self) -> PathBuf {
        self.dir.join("edge-signing.json")
    }
    pub fn seal(&self) -> PathBuf {
        self.dir.join("seal.json")
    }
}

/// Secrets that may come from the environment instead of the data folder.
#[derive(Default, Clone)]
pub struct KeyOverrides {
    /// `key_id:base64` pairs, comma separated, oldest first (`H200_EDGE_SIGNING_KEYS`).
    pub edge_keys: Option<String>,
    /// `version:base64` pairs, comma separated (`H200_SEAL_KEYS`).
    pub seal_keys: Option<String>,
}

impl std::fmt::Debug for KeyOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOverrides")
            .field("edge_keys", &self.edge_keys.as_ref().map(|_| "<redacted>"))
            .field("seal_keys", &self.seal_keys.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BackendKeys {
    /// Loads every key, generating missing files (0600) in `data_dir/keys`. Returns the keys and
    /// the files it created.
    pub fn load_or_generate(
        data_dir: &Path,
        overrides: &KeyOverrides,
        now_ms: i64,
    ) -> anyhow::Result<(BackendKeys, Vec<PathBuf>)> {
        let paths = KeyPaths::new(data_dir);
        create_private_dir(&paths.dir)?;
        let mut created = Vec::new();

        let token = match read_json::<TokenKeyRing>(&paths.token())? {
            Some(ring) if ring.current().is_some() => ring,
            _ => {
                let mut ring = TokenKeyRing::default();
                ring.rotate(now_ms)?;
                write_private_json(&paths.token(), &ring)?;
                created.push(paths.token());
                ring
            }
        };

        let edge = match &overrides.edge_keys {
            Some(text) => EdgeKeyRing::from_list(text).context("edge signing keys")?,
            None => match read_json::<EdgeKeyRing>(&paths.edge())? {
                Some(ring) if ring.current().is_some() => ring,
                _ => {
                    let mut ring = EdgeKeyRing::default();
                    ring.rotate("edge-1".into(), &random_bytes::<32>()?);
                    write_private_json(&paths.edge(), &ring)?;
                    created.push(paths.edge());
                    ring
                }
            },
        };
        if edge.keys.is_empty() || edge.keys.len() > 2 {
            bail!("between one and two edge signing keys must be configured");
        }

        let seal_file = match &overrides.seal_keys {
            Some(text) => SealKeyFile {
                keys: parse_key_list(text)
                    .context("seal keys")?
                    .into_iter()
                    .map(|key| {
                        Ok(SealKeyMaterial {
                            version: key.name.parse().context("seal key version")?,
                            key: B64.encode(key.secret),
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
            None => match read_json::<SealKeyFile>(&paths.seal())? {
                Some(file) if !file.keys.is_empty() => file,
                _ => {
                    let mut file = SealKeyFile::default();
                    file.rotate()?;
                    write_private_json(&paths.seal(), &file)?;
                    created.push(paths.seal());
                    file
                }
            },
        };
        let seal = seal_file.to_seal_keys()?;
        Ok((BackendKeys { token, edge, seal }, created))
    }
}

/// A new Ed25519 token key with a kid that sorts by creation.
pub fn new_token_key(now_ms: i64) -> anyhow::Result<TokenKeyMaterial> {
    let seed = random_bytes::<32>()?;
    let tag = hex::encode(random_bytes::<4>()?);
    Ok(TokenKeyMaterial {
        kid: format!("k{now_ms}-{tag}"),
        seed: hex::encode(seed),
        created_at_ms: now_ms,
        retired_at_ms: None,
    })
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    Ok(bytes)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes JSON readable by the owner only, atomically (write, then rename).
pub fn write_private_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(value)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// `h200 keys rotate`: a new token signing key (the old public key stays published until its
/// tokens expire), and optionally a new edge key and seal key version. Returns what changed, one
/// line each.
pub fn rotate_key_files(data_dir: &Path, edge: bool, seal: bool) -> anyhow::Result<Vec<String>> {
    let mut report = Vec::new();
    let paths = KeyPaths::new(data_dir);
    let now = crate::store::now_ms();
    // Make sure every file exists first, so rotation always has something to rotate.
    BackendKeys::load_or_generate(data_dir, &KeyOverrides::default(), now)?;
    let mut ring: TokenKeyRing = read_json(&paths.token())?.unwrap_or_default();
    let kid = ring.rotate(now)?.kid.clone();
    write_private_json(&paths.token(), &ring)?;
    report.push(format!("token signing key rotated: new kid {kid}"));
    if edge {
        let mut ring: EdgeKeyRing = read_json(&paths.edge())?.unwrap_or_default();
        let next = format!("edge-{}", now / 1000);
        ring.rotate(next.clone(), &random_bytes::<32>()?);
        write_private_json(&paths.edge(), &ring)?;
        report.push(format!(
            "edge signing key rotated: new key id {next} (restart the edge and backend to use it)"
        ));
    }
    if seal {
        let mut file: SealKeyFile = read_json(&paths.seal())?.unwrap_or_default();
        let version = file.rotate()?;
        write_private_json(&paths.seal(), &file)?;
        report.push(format!("seal key rotated: new version {version}"));
    }
    Ok(report)
}

/// What [`revoke_key_file`] did to the token key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileRevocation {
    /// Whether the file held the key.
    pub removed: bool,
    /// The key that signs from now on, when the revoked key was the one signing.
    pub new_signing_kid: Option<String>,
}

/// `h200 keys revoke` on the key file: removes the token key `kid` (see
/// [`TokenKeyRing::revoke`]). A running backend picks the change up within 5 s, or at once when
/// it next issues a token. Recording the revocation for the edges is the caller's part.
pub fn revoke_key_file(data_dir: &Path, kid: &str) -> anyhow::Result<KeyFileRevocation> {
    let paths = KeyPaths::new(data_dir);
    let now = crate::store::now_ms();
    BackendKeys::load_or_generate(data_dir, &KeyOverrides::default(), now)?;
    let mut ring: TokenKeyRing = read_json(&paths.token())?.unwrap_or_default();
    if !ring.contains(kid) {
        return Ok(KeyFileRevocation {
            removed: false,
            new_signing_kid: None,
        });
    }
    let new_signing_kid = ring.revoke(kid, now)?;
    write_private_json(&paths.token(), &ring)?;
    Ok(KeyFileRevocation {
        removed: true,
        new_signing_kid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_the_signing_key_puts_a_fresh_one_in_its_place() {
        let mut ring = TokenKeyRing::default();
        ring.rotate(0).unwrap();
        let old = ring.current().unwrap().kid.clone();
        ring.rotate(10_000).unwrap();
        let signing = ring.current().unwrap().kid.clone();

        assert_eq!(ring.revoke(&old, 20_000).unwrap(), None, "a retired key");
        assert!(!ring.contains(&old));
        assert_eq!(ring.current().unwrap().kid, signing);

        let fresh = ring
            .revoke(&signing, 30_000)
            .unwrap()
            .expect("a new signing key");
        assert_ne!(fresh, signing);
        assert_eq!(ring.current().unwrap().kid, fresh);
        let published: Vec<&str> = ring.published(30_000).map(|k| k.kid.as_str()).collect();
        assert_eq!(
            published,
            vec![fresh.as_str()],
            "the revoked keys are not published"
        );
        assert_eq!(ring.revoke("no-such-kid", 40_000).unwrap(), None);
        assert_eq!(ring.keys.len(), 1);
    }

    #[test]
    fn revoking_a_key_rewrites_the_key_file() {
        let dir = tempdir();
        let (keys, _) = BackendKeys::load_or_generate(&dir, &KeyOverrides::default(), 0).unwrap();
        let kid = keys.token.current().unwrap().kid.clone();
        assert_eq!(
            revoke_key_file(&dir, "k-unknown").unwrap(),
            KeyFileRevocation {
                removed: false,
                new_signing_kid: None
            }
        );
        let done = revoke_key_file(&dir, &kid).unwrap();
        assert!(done.removed);
        let ring: TokenKeyRing = read_json(&KeyPaths::new(&dir).token()).unwrap().unwrap();
        assert!(!ring.contains(&kid));
        assert_eq!(
            Some(ring.current().unwrap().kid.clone()),
            done.new_signing_kid
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn first_start_generates_private_files_and_second_start_reuses_them() {
        let dir = tempdir();
        let (keys, created) =
            BackendKeys::load_or_generate(&dir, &KeyOverrides::default(), 1_000).unwrap();
        assert_eq!(created.len(), 3);
        #[cfg(unix)]
        for path in &created {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let (again, created_again) =
            BackendKeys::load_or_generate(&dir, &KeyOverrides::default(), 2_000).unwrap();
        assert!(created_again.is_empty());
        assert_eq!(
            again.token.current().unwrap().kid,
            keys.token.current().unwrap().kid
        );
        assert_eq!(
            again.edge.current().unwrap().secret,
            keys.edge.current().unwrap().secret
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_the_old_token_key_published_until_its_tokens_expire() {
        let mut ring = TokenKeyRing::default();
        ring.rotate(0).unwrap();
        let old = ring.current().unwrap().kid.clone();
        ring.rotate(10_000).unwrap();
        let new = ring.current().unwrap().kid.clone();
        assert_ne!(old, new);
        let published = |at| {
            ring.published(at)
                .map(|k| k.kid.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            published(10_000 + RETIRED_KEY_PUBLISH_MS - 1),
            vec![old.clone(), new.clone()]
        );
        assert_eq!(published(10_000 + RETIRED_KEY_PUBLISH_MS), vec![new]);
    }

    #[test]
    fn environment_overrides_are_parsed() {
        let dir = tempdir();
        let secret = B64.encode([7u8; 32]);
        let overrides = KeyOverrides {
            edge_keys: Some(format!("old:{secret}, new:{secret}")),
            seal_keys: Some(format!("3:{secret}")),
        };
        let (keys, created) = BackendKeys::load_or_generate(&dir, &overrides, 0).unwrap();
        assert_eq!(keys.edge.current().unwrap().key_id, "new");
        assert_eq!(keys.seal.current_version(), 3);
        assert_eq!(created.len(), 1, "only the token key file is generated");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("h200-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
