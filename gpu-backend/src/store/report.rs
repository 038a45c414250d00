//! The access report of a time window, from the audit trail: events by principal and type, and
//! the totals a compliance review asks for (failed logins, permission denials, administrator
//! actions, data exports and erasures, blocks).

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreResult};

/// Events of one principal (`None`: no authenticated principal) and type in the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrincipalCount {
    pub principal: Option<String>,
    pub event_type: String,
    pub count: i64,
}

/// The totals of the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportTotals {
    pub events: i64,
    pub login_failures: i64,
    pub permission_denials: i64,
    pub admin_actions: i64,
    /// Personal-data exports (`GET /api/v1/me/export`).
    pub data_exports: i64,
    /// Accounts erased, by their owner or an administrator.
    pub erasures: i64,
    /// Addresses blocked (a block's start and its end are one event each).
    pub blocks: i64,
    /// Every event type's count.
    pub by_type: BTreeMap<String, i64>,
}

/// The report of events with `from_ms <= occurred_at_ms < to_ms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessReport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub by_principal: Vec<PrincipalCount>,
    pub totals: ReportTotals,
}

impl AccessReport {
    /// The report as CSV (RFC 4180): `section,principal,event_type,count`, one row per principal
    /// and type (`by_principal`), then one per total (`total`, the total's name as the type).
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("section,principal,event_type,count\r\n");
        for row in &self.by_principal {
            csv.push_str(&format!(
                "by_principal,{},{},{}\r\n",
                csv_field(row.principal.as_deref().unwrap_or("")),
                csv_field(&row.event_type),
                row.count
            ));
        }
        let totals = &self.totals;
        for (name, count) in [
            ("events", totals.events),
            ("login_failures", totals.login_failures),
            ("permission_denials", totals.permission_denials),
            ("admin_actions", totals.admin_actions),
            ("data_exports", totals.data_exports),
            ("erasures", totals.erasures),
            ("blocks", totals.blocks),
        ] {
            csv.push_str(&format!("total,,{name},{count}\r\n"));
        }
        csv
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

impl Store {
    /// The access report of `[from_ms, to_ms)`.
    pub async fn access_report(&self, from_ms: i64, to_ms: i64) -> StoreResult<AccessReport> {
        let rows = sqlx::query(
            "SELECT principal, event_type, COUNT(*) AS n FROM audit_events \
             WHERE occurred_at_ms >= $1 AND occurred_at_ms < $2 \
             GROUP BY principal, event_type ORDER BY principal, event_type",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut by_principal = Vec::with_capacity(rows.len());
        let mut totals = ReportTotals::default();
        for row in &rows {
            let event_type: String = row.try_get("event_type")?;
            let count: i64 = row.try_get("n")?;
            totals.events += count;
            *totals.by_type.entry(event_type.clone()).or_default() += count;
            by_principal.push(PrincipalCount {
                principal: row.try_get("principal")?,
                event_type,
                count,
            });
        }
        let of_type = |kind: &str| totals.by_type.get(kind).copied().unwrap_or(0);
        totals.login_failures = of_type("login_failure");
        totals.permission_denials = of_type("permission_denied");
        totals.admin_actions = of_type("admin_action");
        totals.blocks = of_type("ip_blocked");
        // Exports and erasures are told apart from other events of their type by the detail
        // the backend writes for them.
        totals.data_exports = self
            .count_detail(
                from_ms,
                to_ms,
                "data_access",
                "%\"detail\":\"personal data export\"%",
            )
            .await?;
        totals.erasures = self
            .count_detail(from_ms, to_ms, "admin_action", "%erased%")
            .await?;
        Ok(AccessReport {
            from_ms,
            to_ms,
            by_principal,
            totals,
        })
    }

    async fn count_detail(
        &self,
        from_ms: i64,
        to_ms: i64,
        event_type: &str,
        pattern: &str,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE occurred_at_ms >= $1 AND occurred_at_ms < $2 \
             AND event_type = $3 AND event_json LIKE $4",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(event_type)
        .bind(pattern)
        .fetch_one(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        assert_eq!(csv_field("u-1"), "u-1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        let report = AccessReport {
            from_ms: 0,
            to_ms: 10,
            by_principal: vec![PrincipalCount {
                principal: None,
                event_type: "login_failure".into(),
                count: 3,
            }],
            totals: ReportTotals {
                events: 3,
                login_failures: 3,
                ..Default::default()
            },
        };
        let csv = report.to_csv();
        assert!(csv.starts_with(
            "section,principal,event_type,count\r\nby_principal,,login_failure,3\r\n"
        ));
        assert!(csv.contains("total,,login_failures,3\r\n"));
    }
}
