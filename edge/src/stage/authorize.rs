//! Stage 7: the route policy decides. Anonymous callers of protected routes get 401, principals
//! without the route's permission 403.

use shared::permissions::Principal;
use shared::route_policy::{Auth, Route};

use super::Refusal;

/// Whether `principal` may use `route`: `MISSING_CREDENTIALS` (401) for an anonymous caller of
/// a protected route, `INSUFFICIENT_PERMISSIONS` (403, naming the permission) otherwise.
pub fn authorize(route: &Route, principal: &Principal) -> Result<(), Refusal> {
    route
        .auth
        .permits(principal)
        .map_err(|code| match route.auth {
            Auth::Permission(permission) if code.status() == 403 => {
                Refusal::new(code).with_detail(format!("requires {}", permission.as_str()))
            }
            _ => Refusal::new(code),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ErrorCode;
    use shared::permissions::{PrincipalKind, RoleSet};
    use shared::route_policy::{Resolution, RoutePolicy};

    fn principal(role: &str) -> Principal {
        Principal {
            subject: "u".into(),
            kind: PrincipalKind::User,
            roles: vec![role.into()],
            permissions: RoleSet::default().permissions_of(&[role]),
            token_id: Some("j".into()),
            client_ip: None,
            token: None,
        }
    }

    #[test]
    fn every_role_meets_the_route_table() {
        let policy = RoutePolicy::default();
        let Resolution::Found(delete) = policy.resolve("DELETE", "/api/v1/rules/r1") else {
            panic!("route exists");
        };
        assert_eq!(authorize(delete.route, &principal("manager")), Ok(()));
        let refused = authorize(delete.route, &principal("analyst")).expect_err("403");
        assert_eq!(refused.code(), ErrorCode::InsufficientPermissions);
        assert_eq!(
            refused.problem.detail.as_deref(),
            Some("requires rules:delete")
        );
        let anonymous = authorize(delete.route, &Principal::anonymous()).expect_err("401");
        assert_eq!(anonymous.code(), ErrorCode::MissingCredentials);
        let Resolution::Found(health) = policy.resolve("GET", "/health") else {
            panic!("route exists");
        };
        assert_eq!(authorize(health.route, &Principal::anonymous()), Ok(()));
    }
}
