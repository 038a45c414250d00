//! Bodies of the account routes: a user's rectification of their own record and an
//! administrator's creation and change of accounts.

use super::auth::{MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS};
use super::check::{Validate, check_charset, check_length, check_line, check_some, invalid};
use crate::problem::Problem;
use serde::Deserialize;

/// Longest email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Most roles one account holds.
pub const MAX_ROLES: usize = 16;
/// Longest role name, in characters.
pub const MAX_ROLE_CHARS: usize = 64;

/// `local@domain`, each part non-empty, one `@`, no space or control character.
fn check_email(field: &str, email: &str) -> Result<(), Problem> {
    check_line(field, email, 3, MAX_EMAIL_CHARS)?;
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(invalid(field, "must be an address of the form name@domain"));
    }
    Ok(())
}

/// A username an administrator gives: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
fn check_username(username: &str) -> Result<(), Problem> {
    check_charset(
        "username",
        username,
        1,
        MAX_USERNAME_CHARS,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'),
        "letters, digits, '.', '_', '-' and '@'",
    )
}

/// 1 to 16 role names of 1 to 64 characters; whether each is a role is the backend's to check
/// against its role table.
fn check_roles(roles: &[String]) -> Result<(), Problem> {
    if roles.is_empty() || roles.len() > MAX_ROLES {
        return Err(invalid(
            "roles",
            format!("must name 1 to {MAX_ROLES} roles"),
        ));
    }
    for role in roles {
        check_line("roles", role, 1, MAX_ROLE_CHARS)?;
    }
    Ok(())
}

/// `PATCH /api/v1/me`: the caller rectifies their own record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// The new email address (3 to 254 characters, `name@domain`), stored sealed; `null`
    /// removes it. Required: an empty patch changes nothing and is refused.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub email: Option<Option<String>>,
}

/// A field that was sent, `null` or not (a missing one stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl std::fmt::Debug for AccountPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPatch").finish_non_exhaustive()
    }
}

impl Validate for AccountPatch {
    fn validate(&self) -> Result<(), Problem> {
        match &self.email {
            None => Err(invalid("email", "is required (null removes the address)")),
            Some(email) => check_some(email.as_deref(), |email| check_email("email", email)),
        }
    }
}

/// `POST /api/v1/admin/users`: a new account. Without `password` the backend draws a temporary
/// one and answers it once; either way it must be changed at the first login.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreateRequest {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub username: String,
    /// 1 to 16 role names of the role table.
    pub roles: Vec<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The initial password (the password policy applies); drawn by the backend when absent.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for UserCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCreateRequest")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Validate for UserCreateRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_username(&self.username)?;
        check_roles(&self.roles)?;
        check_some(self.email.as_deref(), |email| check_email("email", email))?;
        check_some(self.password.as_deref(), |password| {
            check_length("password", password, 1, MAX_PASSWORD_CHARS)
        })
    }
}

/// `PATCH /api/v1/admin/users/{id}`: new roles, or the account disabled or enabled again. At
/// least one field.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl Validate for UserPatch {
    fn validate(&self) -> Result<(), Problem> {
        if self.roles.is_none() && self.disabled.is_none() {
            return Err(invalid("roles", "give roles, disabled or both"));
        }
        check_some(self.roles.as_deref(), check_roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse_valid;
    use crate::problem::ErrorCode;

    fn parse<T: serde::de::DeserializeOwned + Validate>(json: &str) -> Result<T, Problem> {
        parse_valid(json.as_bytes())
    }

    #[test]
    fn an_account_patch_takes_an_address_or_null_and_nothing_else() {
        let patch: AccountPatch = parse(r#"{"email":"ana@example.com"}"#).unwrap();
        assert_eq!(patch.email, Some(Some("ana@example.com".to_owned())));
        assert_eq!(
            parse::<AccountPatch>(r#"{"email":null}"#).unwrap().email,
            Some(None)
        );
        assert!(parse::<AccountPatch>("{}").is_err());
        for bad in [
            r#""ana""#,
            r#""@example.com""#,
            r#""ana@""#,
            r#""a b@c.d""#,
            r#""a@b@c""#,
        ] {
            let problem = parse::<AccountPatch>(&format!(r#"{{"email":{bad}}}"#)).unwrap_err();
            assert_eq!(problem.code, ErrorCode::ValidationFailed, "{bad}");
        }
        let unknown = parse::<AccountPatch>(r#"{"email":"a@b.c","roles":["admin"]}"#).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::UnknownField);
    }

    #[test]
    fn a_new_user_needs_a_plain_name_and_some_roles() {
        let user: UserCreateRequest = parse(r#"{"username":"ana.b","roles":["analyst"]}"#).unwrap();
        assert_eq!(user.password, None);
        for bad in [
            r#"{"username":"","roles":["analyst"]}"#,
            r#"{"username":"ana b","roles":["analyst"]}"#,
            r#"{"username":"ana","roles":[]}"#,
            r#"{"username":"ana","roles":[""]}"#,
            r#"{"username":"ana","roles":["analyst"],"email":"nope"}"#,
        ] {
            assert_eq!(
                parse::<UserCreateRequest>(bad).unwrap_err().code,
                ErrorCode::ValidationFailed,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_user_patch_changes_something() {
        assert!(parse::<UserPatch>("{}").is_err());
        let patch: UserPatch = parse(r#"{"disabled":true}"#).unwrap();
        assert_eq!(patch.disabled, Some(true));
        assert!(parse::<UserPatch>(r#"{"roles":[]}"#).is_err());
    }
}
