//! Edge signing keys as operators write them: `key_id:base64` lists (environment variables,
//! Spin variables, wrangler secrets) and the JSON key file the backend keeps in its data folder.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Why a key list or key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    #[error("the key list holds no key")]
    Empty,
    #[error("expected name:base64 pairs, found an entry without ':'")]
    MissingSeparator,
    #[error("key {0} has an empty name")]
    EmptyName(usize),
    #[error("key {0} is not base64")]
    NotBase64(String),
}

/// One named secret: an edge key id or a seal key version, and its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub name: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Parses `name:base64` pairs separated by commas, oldest first; blanks around entries are
/// ignored. At least one key is required.
pub fn parse_key_list(text: &str) -> Result<Vec<NamedKey>, KeyListError> {
    let keys = text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| {
            let (name, value) = entry
                .split_once(':')
                .ok_or(KeyListError::MissingSeparator)?;
            let name = name.trim();
            if name.is_empty() {
                return Err(KeyListError::EmptyName(index));
            }
            let secret = B64
                .decode(value.trim())
                .map_err(|_| KeyListError::NotBase64(name.to_owned()))?;
            Ok(NamedKey {
                name: name.to_owned(),
                secret,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyListError::Empty);
    }
    Ok(keys)
}

/// One edge-to-backend HMAC key as stored in the key file.
#[derive(Clone, Serialize, Deserialize)]
pub struct EdgeKeyMaterial {
    pub key_id: String,
    /// Base64 of the secret (32 bytes).
    pub secret: String,
}

impl std::fmt::Debug for EdgeKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeKeyMaterial")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EdgeKeyMaterial {
    /// The secret's bytes.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, KeyListError> {
        B64.decode(self.secret.trim())
            .map_err(|_| KeyListError::NotBase64(self.key_id.clone()))
    }
}

/// The edge keys (`keys/edge-signing.json`): the last one signs, and up to two are accepted
/// (rotation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EdgeKeyRing {
    pub keys: Vec<EdgeKeyMaterial>,
}

impl EdgeKeyRing {
    /// A ring of the keys in a `key_id:base64` list, oldest first.
    pub fn from_list(text: &str) -> Result<EdgeKeyRing, KeyListError> {
        Ok(EdgeKeyRing {
            keys: parse_key_list(text)?
                .into_iter()
                .map(|key| EdgeKeyMaterial {
                    key_id: key.name,
                    secret: B64.encode(key.secret),
                })
                .collect(),
        })
    }

    /// The key an edge signs with.
    pub fn current(&self) -> Option<&EdgeKeyMaterial> {
        self.keys.last()
    }

    /// Adds a new key and keeps only the previous one beside it.
    pub fn rotate(&mut self, key_id: String, secret: &[u8]) {
        self.keys.push(EdgeKeyMaterial {
            key_id,
            secret: B64.encode(secret),
        });
        let excess = self.keys.len().saturating_sub(2);
        self.keys.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_oldest_first_with_blanks_ignored() {
        let keys = parse_key_list(" edge-1:AAEC , edge-2:AwQF ,").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name, "edge-1");
        assert_eq!(keys[0].secret, vec![0, 1, 2]);
        assert_eq!(keys[1].name, "edge-2");
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert_eq!(parse_key_list(" , "), Err(KeyListError::Empty));
        assert_eq!(parse_key_list("AAEC"), Err(KeyListError::MissingSeparator));
        assert_eq!(parse_key_list(":AAEC"), Err(KeyListError::EmptyName(0)));
        assert_eq!(
            parse_key_list("k:%%"),
            Err(KeyListError::NotBase64("k".into()))
        );
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let keys = parse_key_list("edge-1:c2VjcmV0LXNlY3JldA==").unwrap();
        assert!(!format!("{keys:?}").contains("secret-secret"));
        let ring = EdgeKeyRing::from_list("edge-1:c2VjcmV0LXNlY3JldA==").unwrap();
        assert!(!format!("{ring:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn rotation_keeps_two_keys_and_the_newest_signs() {
        let mut ring = EdgeKeyRing::default();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            ring.rotate(id.into(), &[i as u8; 32]);
        }
        let ids: Vec<_> = ring.keys.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(
            ring.current().unwrap().secret_bytes().unwrap(),
            vec![2u8; 32]
        );
    }
}
