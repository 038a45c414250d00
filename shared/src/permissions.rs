//! Permission strings, the role table that expands roles into permissions, and the [`Principal`]
//! the edge forwards to the backend in the `x-h200-principal` header.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::problem::ErrorCode;

/// Name of the header that carries the authenticated principal from the edge to the backend.
pub const PRINCIPAL_HEADER: &str = "x-h200-principal";

/// Longest `x-h200-principal` value [`Principal::decode_header`] reads, in bytes.
pub const MAX_PRINCIPAL_HEADER_LEN: usize = 4096;

/// The embedded seed role table, used by [`RoleSet::default`].
pub const DEFAULT_ROLES_TOML: &str = include_str!("roles.toml");

const MAX_SUBJECT_LEN: usize = 256;
const MAX_ROLES: usize = 32;
const MAX_ROLE_NAME_LEN: usize = 64;
const MAX_TOKEN_ID_LEN: usize = 128;
/// Longest client address (an IPv6 literal with a zone fits).
const MAX_CLIENT_IP_LEN: usize = 64;

/// Everything that can go wrong with permissions, role tables and principal headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionsError {
    /// A string that names no permission.
    #[error("unknown permission `{0}`")]
    UnknownPermission(String),
    /// The role table is not valid TOML of the expected shape.
    #[error("role table is not valid: {0}")]
    InvalidRoleTable(String),
    /// A role grants a permission that does not exist.
    #[error("role `{role}` grants unknown permission `{permission}`")]
    RoleGrantsUnknownPermission { role: String, permission: String },
    /// A role inherits from a role the table does not define.
    #[error("role `{role}` inherits from undefined role `{inherits}`")]
    UnknownInheritedRole { role: String, inherits: String },
    /// Following `inherits` from this role comes back to it.
    #[error("role `{0}` inherits from itself through a cycle")]
    InheritanceCycle(String),
    /// The principal header is longer than [`MAX_PRINCIPAL_HEADER_LEN`].
    #[error("principal header is longer than {MAX_PRINCIPAL_HEADER_LEN} bytes")]
    PrincipalHeaderTooLong,
    /// The principal header is not base64url of a well-formed principal.
    #[error("principal header is malformed: {0}")]
    MalformedPrincipalHeader(String),
}

impl PermissionsError {
    /// The wire code this error is answered with: a broken role table is our fault (500), a
    /// bad permission string or principal header is a bad request.
    pub fn code(&self) -> ErrorCode {
        match self {
            PermissionsError::UnknownPermission(_)
            | PermissionsError::PrincipalHeaderTooLong
            | PermissionsError::MalformedPrincipalHeader(_) => ErrorCode::BadRequest,
            PermissionsError::InvalidRoleTable(_)
            | PermissionsError::RoleGrantsUnknownPermission { .. }
            | PermissionsError::UnknownInheritedRole { .. }
            | PermissionsError::InheritanceCycle(_) => ErrorCode::Internal,
        }
    }
}

macro_rules! permissions {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// One thing a principal may do, written on the wire as `area:action`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum Permission {
            $(#[serde(rename = $name)] $variant),+
        }

        impl Permission {
            /// Every permission, in declaration order (which is also the bit order of a
            /// [`PermissionSet`]).
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),+];

            /// The permission as written on the wire, e.g. `analysis:read`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name),+
                }
            }
        }
    };
}

permissions! {
    AnalysisRead => "analysis:read",
    AnalysisWrite => "analysis:write",
    AnalysisDelete => "analysis:delete",
    RulesRead => "rules:read",
    RulesWrite => "rules:write",
    RulesDelete => "rules:delete",
    RulesExecute => "rules:execute",
    ServersRead => "servers:read",
    ServersControl => "servers:control",
    ClustersRead => "clusters:read",
    ClustersWrite => "clusters:write",
    MetricsRead => "metrics:read",
    AdminAudit => "admin:audit",
    AdminUsers => "admin:users",
}

impl Permission {
    const fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl FromStr for Permission {
    type Err = PermissionsError;

    /// Parses the exact wire name; anything else is [`PermissionsError::UnknownPermission`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|permission| permission.as_str() == s)
            .ok_or_else(|| PermissionsError::UnknownPermission(truncated(s)))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions in one machine word; serialized as a list of permission strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// The set with no permission.
    pub const fn empty() -> Self {
        PermissionSet(0)
    }

    /// The set with every permission.
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    /// Whether `permission` is in the set.
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Adds `permission` to the set.
    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
    }

    /// Takes `permission` out of the set.
    pub fn remove(&mut self, permission: Permission) {
        self.0 &= !permission.bit();
    }

    /// The permissions in either set.
    pub const fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    /// The permissions in both sets.
    pub const fn intersection(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    /// Whether every permission of `other` is also in `self`.
    pub const fn is_superset(self, other: PermissionSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set has no permission.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many permissions the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The permissions of the set, in [`Permission::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    /// The permissions as wire strings, in [`Permission::ALL`] order.
    pub fn to_strings(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::empty();
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for permission in self.iter() {
            seq.serialize_element(permission.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    /// Reads a list of permission strings; an unknown string is an error, duplicates are not.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = PermissionSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of permission strings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PermissionSet, A::Error> {
                let mut set = PermissionSet::empty();
                let mut count = 0usize;
                while let Some(permission) = seq.next_element::<Permission>()? {
                    count += 1;
                    if count > 4 * Permission::ALL.len() {
                        return Err(de::Error::custom("too many permissions"));
                    }
                    set.insert(permission);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(SetVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleTableFile {
    role: BTreeMap<String, RoleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    inherits: Vec<String>,
}

/// The role table: every role name with the permissions it grants, inheritance already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet {
    roles: BTreeMap<String, PermissionSet>,
}

impl Default for RoleSet {
    /// The seed roles embedded from `roles.toml`.
    fn default() -> Self {
        RoleSet::from_toml(DEFAULT_ROLES_TOML)
            .expect("the embedded role table is valid; this is a bug")
    }
}

impl RoleSet {
    /// Reads a role table (`[role.NAME]` with `permissions` and optional `inherits`), refusing
    /// unknown permissions, undefined inherited roles and inheritance cycles. `"*"` grants
    /// every permission.
    pub fn from_toml(text: &str) -> Result<Self, PermissionsError> {
        let file: RoleTableFile =
            toml::from_str(text).map_err(|e| PermissionsError::InvalidRoleTable(e.to_string()))?;
        let mut direct = BTreeMap::new();
        for (name, entry) in &file.role {
            let mut set = PermissionSet::empty();
            for permission in &entry.permissions {
                if permission == "*" {
                    set = PermissionSet::all();
                    continue;
                }
                let parsed = permission.parse::<Permission>().map_err(|_| {
                    PermissionsError::RoleGrantsUnknownPermission {
                        role: name.clone(),
                        permission: truncated(permission),
                    }
                })?;
                set.insert(parsed);
            }
            for parent in &entry.inherits {
                if !file.role.contains_key(parent) {
                    return Err(PermissionsError::UnknownInheritedRole {
                        role: name.clone(),
                        inherits: truncated(parent),
                    });
                }
            }
            direct.insert(name.as_str(), set);
        }

        let mut roles = BTreeMap::new();
        for name in file.role.keys() {
            let mut visiting = BTreeSet::new();
            let set = expand(name, &file.role, &direct, &mut visiting)?;
            roles.insert(name.clone(), set);
        }
        Ok(RoleSet { roles })
    }

    /// The permissions `role` grants, or `None` when the table has no such role.
    pub fn role(&self, role: &str) -> Option<PermissionSet> {
        self.roles.get(role).copied()
    }

    /// The role names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The union of the permissions of `roles`; a role the table does not know grants nothing.
    pub fn permissions_of<S: AsRef<str>>(&self, roles: &[S]) -> PermissionSet {
        roles
            .iter()
            .filter_map(|role| self.role(role.as_ref()))
            .fold(PermissionSet::empty(), PermissionSet::union)
    }
}

fn expand(
    name: &str,
    table: &BTreeMap<String, RoleEntry>,
    direct: &BTreeMap<&str, PermissionSet>,
    visiting: &mut BTreeSet<String>,
) -> Result<PermissionSet, PermissionsError> {
    if !visiting.insert(name.to_owned()) {
        return Err(PermissionsError::InheritanceCycle(name.to_owned()));
    }
    let mut set = direct.get(name).copied().unwrap_or_default();
    if let Some(entry) = table.get(name) {
        for parent in &entry.inherits {
            set = set.union(expand(parent, table, direct, visiting)?);
        }
    }
    visiting.remove(name);
    Ok(set)
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person with an access token.
    User,
    /// A caller with an `ncs_` API key.
    ApiKey,
    /// Nobody authenticated (public routes).
    Anonymous,
}

/// Who is calling, and what they may do; what the edge tells the backend after authenticating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// The user id, or the API key's owner for [`PrincipalKind::ApiKey`].
    pub subject: String,
    pub kind: PrincipalKind,
    /// The role names the principal holds.
    pub roles: Vec<String>,
    /// The permissions the roles (or the key's scope) grant.
    pub permissions: PermissionSet,
    /// The access token's `jti` or the API key's id, for revocation and audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The client's address as the edge saw it (for audit and per-IP policies at the backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Which key signed the access token and when it was issued, so the backend can re-check the
    /// key and subject revocations; `None` for API keys and anonymous callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStamp>,
}

/// The facts of an access token a principal stands for, beyond its `jti`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenStamp {
    /// The `kid` of the key that signed it.
    pub key_id: String,
    /// `iat`, unix seconds.
    pub issued_at: u64,
}

impl Principal {
    /// The principal of an unauthenticated request: subject `anonymous`, no role, no permission.
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".to_owned(),
            kind: PrincipalKind::Anonymous,
            roles: Vec::new(),
            permissions: PermissionSet::empty(),
            token_id: None,
            client_ip: None,
            token: None,
        }
    }

    /// Whether the principal holds `permission`.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// The `x-h200-principal` header value: base64url (no padding) of compact JSON.
    pub fn encode_header(&self) -> String {
        let json = serde_json::to_vec(self).expect("a principal always serializes; this is a bug");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads an `x-h200-principal` header value. Refuses anything longer than
    /// [`MAX_PRINCIPAL_HEADER_LEN`], padded or non-canonical base64url, unknown fields or
    /// permissions, and out-of-bounds subjects, roles or token ids.
    pub fn decode_header(value: &str) -> Result<Self, PermissionsError> {
        if value.len() > MAX_PRINCIPAL_HEADER_LEN {
            return Err(PermissionsError::PrincipalHeaderTooLong);
        }
        let json = URL_SAFE_NO_PAD
            .decode(value.as_bytes())
            .map_err(|_| PermissionsError::MalformedPrincipalHeader("not base64url".into()))?;
        let principal: Principal = serde_json::from_slice(&json)
            .map_err(|e| PermissionsError::MalformedPrincipalHeader(e.to_string()))?;
        principal.check_bounds()?;
        Ok(principal)
    }

    fn check_bounds(&self) -> Result<(), PermissionsError> {
        let malformed = |what: &str| Err(PermissionsError::MalformedPrincipalHeader(what.into()));
        if !bounded_text(&self.subject, MAX_SUBJECT_LEN) {
            return malformed("subject is empty, too long or has control characters");
        }
        if self.roles.len() > MAX_ROLES {
            return malformed("too many roles");
        }
        if !self
            .roles
            .iter()
            .all(|r| bounded_text(r, MAX_ROLE_NAME_LEN))
        {
            return malformed("a role name is empty, too long or has control characters");
        }
        if let Some(id) = &self.token_id
            && !bounded_text(id, MAX_TOKEN_ID_LEN)
        {
            return malformed("token id is empty, too long or has control characters");
        }
        if let Some(ip) = &self.client_ip
            && !bounded_text(ip, MAX_CLIENT_IP_LEN)
        {
            return malformed("client address is empty, too long or has control characters");
        }
        if let Some(stamp) = &self.token
            && !bounded_text(&stamp.key_id, MAX_TOKEN_ID_LEN)
        {
            return malformed("token key id is empty, too long or has control characters");
        }
        Ok(())
    }
}

fn bounded_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}

/// Keeps untrusted text in error messages short.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn set(permissions: &[Permission]) -> PermissionSet {
        permissions.iter().copied().collect()
    }

    #[test]
    fn permission_strings_round_trip() {
        assert_eq!(Permission::ALL.len(), 14);
        for permission in Permission::ALL {
            assert_eq!(permission.as_str().parse::<Permission>(), Ok(*permission));
            assert_eq!(
                serde_json::to_value(permission).unwrap(),
                serde_json::Value::String(permission.as_str().into())
            );
        }
        assert_eq!("rules:execute".parse::<Permission>(), Ok(RulesExecute));
        assert_eq!(
            "Rules:Read".parse::<Permission>(),
            Err(PermissionsError::UnknownPermission("Rules:Read".into()))
        );
        assert!("admin".parse::<Permission>().is_err());
    }

    #[test]
    fn permission_set_is_a_bitset() {
        let mut s = PermissionSet::empty();
        assert!(s.is_empty());
        s.insert(AdminUsers);
        s.insert(AnalysisRead);
        s.insert(AnalysisRead);
        assert_eq!(s.len(), 2);
        assert!(s.contains(AdminUsers) && !s.contains(AdminAudit));
        assert_eq!(s.to_strings(), vec!["analysis:read", "admin:users"]);
        s.remove(AdminUsers);
        assert_eq!(s, set(&[AnalysisRead]));
        assert_eq!(PermissionSet::all().len(), 14);
        assert!(PermissionSet::all().is_superset(s));
        let json = serde_json::to_string(&set(&[RulesRead, MetricsRead])).unwrap();
        assert_eq!(json, r#"["rules:read","metrics:read"]"#);
        let back: PermissionSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set(&[RulesRead, MetricsRead]));
        assert!(serde_json::from_str::<PermissionSet>(r#"["rules:read","root"]"#).is_err());
    }

    #[test]
    fn seed_roles_grant_exactly_the_design_table() {
        let roles = RoleSet::default();
        let viewer = set(&[AnalysisRead, RulesRead, ServersRead]);
        let analyst = viewer.union(set(&[AnalysisWrite, RulesExecute]));
        let manager = analyst.union(set(&[
            AnalysisDelete,
            RulesWrite,
            RulesDelete,
            ServersControl,
        ]));
        assert_eq!(roles.role("viewer"), Some(viewer));
        assert_eq!(roles.role("analyst"), Some(analyst));
        assert_eq!(roles.role("manager"), Some(manager));
        assert_eq!(manager.len(), 9);
        assert_eq!(roles.role("admin"), Some(PermissionSet::all()));
        assert_eq!(
            roles.role("readonly"),
            Some(set(&[ClustersRead, MetricsRead]))
        );
        assert_eq!(
            roles.role("user"),
            Some(set(&[ClustersRead, ClustersWrite]))
        );
        assert_eq!(
            roles.role("service"),
            Some(set(&[ClustersRead, ClustersWrite, AnalysisWrite]))
        );
        assert_eq!(
            roles.names().collect::<Vec<_>>(),
            [
                "admin", "analyst", "manager", "readonly", "service", "user", "viewer"
            ]
        );
        assert_eq!(roles.role("root"), None);
    }

    #[test]
    fn admin_has_every_permission() {
        let admin = RoleSet::default().permissions_of(&["admin"]);
        for permission in Permission::ALL {
            assert!(admin.contains(*permission), "admin lacks {permission}");
        }
    }

    #[test]
    fn permissions_of_unions_roles_and_ignores_unknown_ones() {
        let roles = RoleSet::default();
        assert_eq!(
            roles.permissions_of(&["readonly", "user", "nobody"]),
            set(&[ClustersRead, ClustersWrite, MetricsRead])
        );
        assert_eq!(roles.permissions_of::<&str>(&[]), PermissionSet::empty());
    }

    #[test]
    fn an_operator_table_replaces_the_seed() {
        let roles = RoleSet::from_toml(
            r#"
            [role.auditor]
            permissions = ["admin:audit"]
            [role.lead]
            inherits = ["auditor"]
            permissions = ["servers:read", "servers:control"]
            "#,
        )
        .unwrap();
        assert_eq!(
            roles.role("lead"),
            Some(set(&[AdminAudit, ServersRead, ServersControl]))
        );
        assert_eq!(roles.role("viewer"), None);
    }

    #[test]
    fn bad_role_tables_are_refused() {
        assert!(matches!(
            RoleSet::from_toml("[role.x]\npermissions = [\"rules:fly\"]"),
            Err(PermissionsError::RoleGrantsUnknownPermission { role, permission })
                if role == "x" && permission == "rules:fly"
        ));
        assert!(matches!(
            RoleSet::from_toml("[role.x]\ninherits = [\"ghost\"]"),
            Err(PermissionsError::UnknownInheritedRole { .. })
        ));
        let cycle = "[role.a]\ninherits = [\"b\"]\n[role.b]\ninherits = [\"c\"]\n[role.c]\ninherits = [\"a\"]";
        assert!(matches!(
            RoleSet::from_toml(cycle),
            Err(PermissionsError::InheritanceCycle(_))
        ));
        assert!(matches!(
            RoleSet::from_toml("[role.a]\ninherits = [\"a\"]"),
            Err(PermissionsError::InheritanceCycle(name)) if name == "a"
        ));
        assert!(matches!(
            RoleSet::from_toml("[role.a]\npermission = [\"rules:read\"]"),
            Err(PermissionsError::InvalidRoleTable(_))
        ));
        assert!(matches!(
            RoleSet::from_toml("not toml ["),
            Err(PermissionsError::InvalidRoleTable(_))
        ));
        assert_eq!(
            PermissionsError::InheritanceCycle("a".into()).code(),
            ErrorCode::Internal
        );
    }

    #[test]
    fn diamond_inheritance_is_not_a_cycle() {
        let roles = RoleSet::from_toml(
            "[role.base]\npermissions = [\"rules:read\"]\n\
             [role.l]\ninherits = [\"base\"]\n[role.r]\ninherits = [\"base\"]\n\
             [role.top]\ninherits = [\"l\", \"r\"]\npermissions = [\"rules:write\"]",
        )
        .unwrap();
        assert_eq!(roles.role("top"), Some(set(&[RulesRead, RulesWrite])));
    }

    fn sample_principal() -> Principal {
        Principal {
            subject: "user-42".into(),
            kind: PrincipalKind::ApiKey,
            roles: vec!["analyst".into()],
            permissions: RoleSet::default().permissions_of(&["analyst"]),
            token_id: Some("key-7".into()),
            client_ip: Some("203.0.113.9".into()),
            token: None,
        }
    }

    #[test]
    fn principal_header_round_trips() {
        let principal = sample_principal();
        assert!(principal.has(RulesExecute) && !principal.has(RulesWrite));
        let header = principal.encode_header();
        assert!(
            header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let json = URL_SAFE_NO_PAD.decode(&header).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"subject":"user-42","kind":"api_key","roles":["analyst"],"permissions":["analysis:read","analysis:write","rules:read","rules:execute","servers:read"],"token_id":"key-7","client_ip":"203.0.113.9"}"#
        );
        assert_eq!(Principal::decode_header(&header), Ok(principal));
        let anonymous = Principal::anonymous();
        assert_eq!(
            Principal::decode_header(&anonymous.encode_header()),
            Ok(anonymous)
        );
        let user = Principal {
            kind: PrincipalKind::User,
            token: Some(TokenStamp {
                key_id: "k1700000000000-0a1b2c3d".into(),
                issued_at: 1_700_000_000,
            }),
            ..sample_principal()
        };
        assert_eq!(Principal::decode_header(&user.encode_header()), Ok(user));
        let blank_key = Principal {
            token: Some(TokenStamp {
                key_id: String::new(),
                issued_at: 1,
            }),
            ..sample_principal()
        };
        assert!(Principal::decode_header(&blank_key.encode_header()).is_err());
    }

    #[test]
    fn garbage_principal_headers_are_refused() {
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let bad = [
            String::new(),
            "!!!".to_owned(),
            format!("{}=", sample_principal().encode_header()),
            URL_SAFE_NO_PAD.encode(b"\xff\xfe"),
            encode("{}"),
            encode(r#"{"subject":"a","kind":"root","roles":[],"permissions":[]}"#),
            encode(r#"{"subject":"a","kind":"user","roles":[],"permissions":["rules:fly"]}"#),
            encode(r#"{"subject":"a","kind":"user","roles":[],"permissions":[],"admin":true}"#),
            encode(r#"{"subject":"","kind":"user","roles":[],"permissions":[]}"#),
            encode(r#"{"subject":"a\n","kind":"user","roles":[],"permissions":[]}"#),
        ];
        for value in &bad {
            assert!(
                matches!(
                    Principal::decode_header(value),
                    Err(PermissionsError::MalformedPrincipalHeader(_))
                ),
                "accepted {value:?}"
            );
        }
        let long = "A".repeat(MAX_PRINCIPAL_HEADER_LEN + 1);
        assert_eq!(
            Principal::decode_header(&long),
            Err(PermissionsError::PrincipalHeaderTooLong)
        );
        assert_eq!(
            PermissionsError::PrincipalHeaderTooLong.code(),
            ErrorCode::BadRequest
        );
    }
}
