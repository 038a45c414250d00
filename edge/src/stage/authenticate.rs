//! Stage 5: who is calling. A Bearer JWT verified against the cached JWKS, or an `X-API-Key`
//! checked against the grant cache; the pipeline fetches keys and grants, this module decides.

use shared::ErrorCode;
use shared::api_key::{ApiKey, ApiKeyCache, ApiKeyGrant};
use shared::permissions::{
    Permission, PermissionSet, Principal, PrincipalKind, RoleSet, TokenStamp,
};
use shared::token::{KeySet, TokenError, TokenKind, TokenPolicy, VerifiedToken};

use super::Refusal;
use crate::message::EdgeRequest;

/// The header an API key arrives in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What the client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// A well-formed `X-API-Key`.
    ApiKey(ApiKey),
    /// Nothing.
    None,
}

/// Reads the credentials of `request`: a Bearer token wins over an API key. An `Authorization`
/// of another scheme is `INVALID_TOKEN`; a malformed API key is `INVALID_API_KEY`.
pub fn credentials(request: &EdgeRequest) -> Result<Credentials<'_>, Refusal> {
    if let Some(value) = request.header("authorization") {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Refusal::new(ErrorCode::InvalidToken).with_detail("use the Bearer scheme")
            })?;
        return Ok(Credentials::Bearer(token));
    }
    if let Some(value) = request.header(API_KEY_HEADER) {
        let key = ApiKey::parse(value.trim()).map_err(|e| Refusal::new(e.code()))?;
        return Ok(Credentials::ApiKey(key));
    }
    Ok(Credentials::None)
}

/// Verifies an access token against `keys` under `policy` at `now_secs`.
pub fn verify_token(
    keys: &KeySet,
    policy: &TokenPolicy,
    token: &str,
    now_secs: u64,
) -> Result<VerifiedToken, TokenError> {
    keys.verify(token, policy, TokenKind::Access, now_secs)
}

/// The refusal for a token that did not verify.
pub fn token_refusal(error: &TokenError) -> Refusal {
    Refusal::new(error.code())
}

/// The principal of a verified access token: its roles, the permissions the edge's role table
/// gives them (never the token's own list), the `jti` as token id, and the signing key and issue
/// time the backend re-checks revocations by.
pub fn user_principal(token: &VerifiedToken, roles: &RoleSet, client_ip: &str) -> Principal {
    Principal {
        subject: token.subject.clone(),
        kind: PrincipalKind::User,
        roles: token.claims.roles.clone(),
        permissions: roles.permissions_of(&token.claims.roles),
        token_id: Some(token.jwt_id.clone()),
        client_ip: Some(client_ip.to_owned()),
        token: Some(TokenStamp {
            key_id: token.kid.clone(),
            issued_at: token.issued_at,
        }),
    }
}

/// Whether a fresh grant admits the request at `now_secs`, and the principal it stands for.
pub fn api_key_principal(
    grant: Option<&ApiKeyGrant>,
    now_secs: u64,
    client_ip: &str,
) -> Result<Principal, Refusal> {
    let grant = ApiKeyCache::decide(grant, now_secs).map_err(|e| Refusal::new(e.code()))?;
    let permissions: PermissionSet = grant
        .permissions
        .iter()
        .filter_map(|p| p.parse::<Permission>().ok())
        .collect();
    Ok(Principal {
        subject: grant.subject.clone(),
        kind: PrincipalKind::ApiKey,
        roles: grant.roles.clone(),
        permissions,
        token_id: Some(grant.key_id.clone()),
        client_ip: Some(client_ip.to_owned()),
        token: None,
    })
}

/// The anonymous principal of a public route, with the client's address.
pub fn anonymous(client_ip: &str) -> Principal {
    Principal {
        client_ip: Some(client_ip.to_owned()),
        ..Principal::anonymous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::token::{H200Claims, SigningKey};

    fn request(headers: &[(&str, &str)]) -> EdgeRequest {
        EdgeRequest {
            method: "GET".into(),
            path: "/api/v1/rules".into(),
            query: None,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            client_ip: "203.0.113.5".into(),
        }
    }

    #[test]
    fn credentials_are_read_and_malformed_ones_refused() {
        assert_eq!(
            credentials(&request(&[("authorization", "Bearer abc")])),
            Ok(Credentials::Bearer("abc"))
        );
        let basic = request(&[("authorization", "Basic dXNlcg==")]);
        assert_eq!(
            credentials(&basic).map_err(|r| r.code()),
            Err(ErrorCode::InvalidToken)
        );
        let bad_key = request(&[("x-api-key", "ncs_nothex")]);
        assert_eq!(
            credentials(&bad_key).map_err(|r| r.code()),
            Err(ErrorCode::InvalidApiKey)
        );
        assert_eq!(credentials(&request(&[])), Ok(Credentials::None));
    }

    #[test]
    fn a_token_principal_takes_permissions_from_the_edge_role_table() {
        let signing = SigningKey::generate_ed25519("k1", [3u8; 32]).expect("key");
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        let policy = TokenPolicy::new(
            shared::token::DEFAULT_ISSUER,
            shared::token::DEFAULT_AUDIENCE,
        );
        let claims = H200Claims::access(vec!["viewer".into()], vec!["admin:users".into()], false);
        let now = 1_700_000_000;
        let token = signing
            .issue(&policy, "user-1", "jti-1", &claims, now)
            .expect("issue");
        let verified = verify_token(&keys, &policy, &token, now).expect("verifies");
        let principal = user_principal(&verified, &RoleSet::default(), "203.0.113.5");
        assert_eq!(principal.kind, PrincipalKind::User);
        assert!(principal.has(Permission::AnalysisRead));
        assert!(!principal.has(Permission::AdminUsers));
        assert_eq!(principal.token_id.as_deref(), Some("jti-1"));
        assert_eq!(
            principal.token,
            Some(TokenStamp {
                key_id: "k1".into(),
                issued_at: now
            })
        );
        let expired = verify_token(&keys, &policy, &token, now + 3 * 3600);
        assert_eq!(
            expired.map_err(|e| token_refusal(&e).code()),
            Err(ErrorCode::ExpiredToken)
        );
    }

    #[test]
    fn api_key_grants_are_decided_by_the_shared_cache_rules() {
        let grant = ApiKeyGrant {
            key_id: "key-1".into(),
            subject: "user-7".into(),
            permissions: vec!["clusters:read".into(), "no:such".into()],
            roles: vec!["user".into()],
            expires_at: Some(2_000),
            revoked: false,
        };
        let principal = api_key_principal(Some(&grant), 1_000, "ip").expect("admitted");
        assert_eq!(principal.kind, PrincipalKind::ApiKey);
        assert!(principal.has(Permission::ClustersRead));
        assert!(!principal.has(Permission::ClustersWrite));
        let expired = api_key_principal(Some(&grant), 2_000, "ip").map_err(|r| r.code());
        assert_eq!(expired, Err(ErrorCode::InvalidApiKey));
        let revoked = ApiKeyGrant {
            revoked: true,
            ..grant
        };
        let refused = api_key_principal(Some(&revoked), 1_000, "ip").map_err(|r| r.code());
        assert_eq!(refused, Err(ErrorCode::RevokedApiKey));
        let unknown = api_key_principal(None, 1_000, "ip").map_err(|r| r.code());
        assert_eq!(unknown, Err(ErrorCode::InvalidApiKey));
    }
}
