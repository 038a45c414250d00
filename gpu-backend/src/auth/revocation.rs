//! The deny-list as the backend enforces it itself: the check the gate repeats for every user
//! request and the refresh route makes for a presented refresh token, revoking every token a
//! subject holds, and erasing an account with every credential it has. The rule is [`shared::revocation`]'s, the same one the edges apply.

use shared::ErrorCode;
use shared::permissions::{Principal, PrincipalKind};
use shared::revocation::{RevocationKind, RevokedTarget, TokenFacts};
use shared::token::{TokenPolicy, VerifiedToken};

use crate::store::{Store, StoreResult};

/// The code to refuse the token `facts` describes with when the deny-list names it (by its
/// `jti`, its signing key or its subject), else `None`.
pub async fn refusal(store: &Store, facts: &TokenFacts<'_>) -> StoreResult<Option<ErrorCode>> {
    let cutoffs = store.denials(facts).await?;
    Ok(facts.refusal(&cutoffs))
}

/// What the deny-list check needs of a user principal's access token. A principal the edge sent
/// without its token's key and issue time is checked as if issued at time 0: any revocation of
/// its subject refuses it.
pub fn principal_facts(principal: &Principal) -> Option<TokenFacts<'_>> {
    if principal.kind != PrincipalKind::User {
        return None;
    }
    let stamp = principal.token.as_ref();
    Some(TokenFacts {
        token_id: principal.token_id.as_deref()?,
        key_id: stamp.map_or("", |s| s.key_id.as_str()),
        subject: &principal.subject,
        issued_at_secs: stamp.map_or(0, |s| s.issued_at),
    })
}

/// The facts of a token the backend verified itself (a presented refresh token).
pub fn verified_facts(token: &VerifiedToken) -> TokenFacts<'_> {
    TokenFacts {
        token_id: &token.jwt_id,
        key_id: &token.kid,
        subject: &token.subject,
        issued_at_secs: token.issued_at,
    }
}

/// Revokes every token of `subject` issued before `before_ms` (unix ms), refresh tokens
/// included, at the backend at once and at every edge within 60 s. The entry lasts as long as
/// the longest-lived token `policy` issues.
pub async fn revoke_subject(
    store: &Store,
    subject: &str,
    before_ms: i64,
    policy: &TokenPolicy,
) -> StoreResult<()> {
    let target = RevokedTarget {
        kind: RevocationKind::Subject,
        id: subject.to_owned(),
    };
    let expires = before_ms.saturating_add(token_lifetime_ms(policy));
    store.revoke(&target, Some(before_ms), expires).await
}

/// Erases the account `user_id` and ends every credential it has, in one transaction
/// ([`Store::delete_user`]): its API keys and refresh families go with it, and every token of
/// its subject issued until the erasure is revoked (a `sub` entry kept as long as the
/// longest-lived token `policy` issues), at the backend at once and at every edge within 60 s.
/// [`StoreError::AccountGone`](crate::store::StoreError::AccountGone) when it is already gone.
pub async fn erase_account(store: &Store, user_id: &str, policy: &TokenPolicy) -> StoreResult<()> {
    store.delete_user(user_id, token_lifetime_ms(policy)).await
}

/// The longest a token `policy` issues can be accepted after its issue, in milliseconds.
pub fn token_lifetime_ms(policy: &TokenPolicy) -> i64 {
    let longest_secs = policy.refresh_ttl_secs.max(policy.access_ttl_secs) + policy.leeway_secs;
    i64::try_from(longest_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
