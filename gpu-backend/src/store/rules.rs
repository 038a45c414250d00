//! Placement rules, each owned by one principal. A row holds a [`StoredRule`]: its id, and its
//! definition as the JSON of the API ([`RuleDefinition`]); the definition's context and priority
//! are also columns, to filter and order by.

use serde::{Serialize, Serializer};
use shared::body::{RuleDefinition, RulePatch, StoredRule};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, StoreResult, now_ms};

/// Most rules one owner may keep.
pub const MAX_RULES_PER_OWNER: i64 = 1_000;

/// A stored rule with its owner and times.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// The id and the definition, as the rules engine and the `analysis` job take them.
    pub stored: StoredRule,
    pub owner: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// On the wire (the rule routes, the GDPR export) a record is one flat object: `id`, `owner`,
/// the definition's fields and the two times.
impl Serialize for RuleRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            id: &'a str,
            owner: &'a str,
            #[serde(flatten)]
            rule: &'a RuleDefinition,
            created_at_ms: i64,
            updated_at_ms: i64,
        }
        Flat {
            id: &self.stored.id,
            owner: &self.owner,
            rule: &self.stored.rule,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
        .serialize(serializer)
    }
}

/// Which rules a listing returns.
#[derive(Debug, Clone, Default)]
pub struct RuleFilter<'a> {
    /// Only this owner's; everyone's when `None`.
    pub owner: Option<&'a str>,
    /// Only rules of this context.
    pub context: Option<&'a str>,
    pub limit: i64,
    pub offset: i64,
}

const RULE_COLUMNS: &str = "id, owner, definition, created_at_ms, updated_at_ms";

fn rule_from_row(row: &AnyRow) -> StoreResult<RuleRecord> {
    let definition: String = row.try_get("definition")?;
    Ok(RuleRecord {
        stored: StoredRule {
            id: row.try_get("id")?,
            rule: serde_json::from_str(&definition)
                .map_err(|e| StoreError::Corrupt(format!("rule definition: {e}")))?,
        },
        owner: row.try_get("owner")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn definition_json(rule: &RuleDefinition) -> String {
    serde_json::to_string(rule).expect("a rule definition serializes; this is a bug")
}

impl Store {
    /// Saves a new rule of the account `owner`. [`StoreError::Conflict`] when the owner already
    /// keeps [`MAX_RULES_PER_OWNER`] rules, [`StoreError::AccountGone`] when the account is not
    /// there (erased meanwhile).
    pub async fn create_rule(&self, owner: &str, rule: &RuleDefinition) -> StoreResult<RuleRecord> {
        let mut tx = self.begin_write().await?;
        self.hold_account(&mut tx, owner).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE owner = $1")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_RULES_PER_OWNER {
            return Err(StoreError::Conflict);
        }
        let now = now_ms();
        let record = RuleRecord {
            stored: StoredRule {
                id: uuid::Uuid::now_v7().to_string(),
                rule: rule.clone(),
            },
            owner: owner.to_owned(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        sqlx::query(
            "INSERT INTO rules (id, owner, context, priority, definition, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&record.stored.id)
        .bind(owner)
        .bind(rule.context.as_deref())
        .bind(i64::from(rule.priority))
        .bind(definition_json(rule))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn rule(&self, id: &str) -> StoreResult<Option<RuleRecord>> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    /// Rules matching `filter`, highest priority first (then oldest first), and how many match
    /// in all.
    pub async fn list_rules(&self, filter: &RuleFilter<'_>) -> StoreResult<(Vec<RuleRecord>, i64)> {
        let (rules, total) = self.select_rules(filter, true).await?;
        Ok((rules, total.unwrap_or_default()))
    }

    /// The page of rules `filter` selects, and with `with_total` how many match in all.
    async fn select_rules(
        &self,
        filter: &RuleFilter<'_>,
        with_total: bool,
    ) -> StoreResult<(Vec<RuleRecord>, Option<i64>)> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [("owner", filter.owner), ("context", filter.context)] {
            if let Some(value) = value {
                values.push(value);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        let condition = conditions.join(" AND ");
        let (limit, offset) = (values.len() + 1, values.len() + 2);
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE {condition} ORDER BY priority DESC, created_at_ms, id LIMIT ${limit} OFFSET ${offset}"
        );
        let mut query = sqlx::query(&sql);
        for value in &values {
            query = query.bind(*value);
        }
        let rows = query
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        let rules = rows.iter().map(rule_from_row).collect::<StoreResult<_>>()?;
        if !with_total {
            return Ok((rules, None));
        }
        let sql = format!("SELECT COUNT(*) FROM rules WHERE {condition}");
        let mut count = sqlx::query_scalar(&sql);
        for value in &values {
            count = count.bind(*value);
        }
        Ok((rules, Some(count.fetch_one(&self.pool).await?)))
    }

    /// Every rule of `owner` (of `context` when given), highest priority first.
    pub async fn rules_of(
        &self,
        owner: &str,
        context: Option<&str>,
    ) -> StoreResult<Vec<RuleRecord>> {
        let (rules, _) = self
            .select_rules(
                &RuleFilter {
                    owner: Some(owner),
                    context,
                    limit: MAX_RULES_PER_OWNER,
                    offset: 0,
                },
                false,
            )
            .await?;
        Ok(rules)
    }

    /// Applies `patch` to rule `id`; the patched rule must still pass `check` (the API's
    /// limits), or nothing is written. `Ok(None)` when there is no such rule (also when it went
    /// with its owner's account while this ran).
    pub async fn update_rule<E>(
        &self,
        id: &str,
        patch: &RulePatch,
        check: impl FnOnce(&RuleDefinition) -> Result<(), E>,
    ) -> StoreResult<Option<Result<RuleRecord, E>>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(mut record) = row.as_ref().map(rule_from_row).transpose()? else {
            return Ok(None);
        };
        let rule = &mut record.stored.rule;
        let patch = patch.clone();
        if let Some(name) = patch.name {
            rule.name = name;
        }
        if let Some(description) = patch.description {
            rule.description = Some(description);
        }
        if let Some(conditions) = patch.conditions {
            rule.conditions = conditions;
        }
        if let Some(actions) = patch.actions {
            rule.actions = actions;
        }
        if let Some(priority) = patch.priority {
            rule.priority = priority;
        }
        if let Some(enabled) = patch.enabled {
            rule.enabled = enabled;
        }
        if let Some(context) = patch.context {
            rule.context = Some(context);
        }
        if let Err(e) = check(rule) {
            return Ok(Some(Err(e)));
        }
        record.updated_at_ms = now_ms().max(record.updated_at_ms);
        let updated = sqlx::query(
            "UPDATE rules SET context = $1, priority = $2, definition = $3, updated_at_ms = $4 WHERE id = $5",
        )
        .bind(record.stored.rule.context.as_deref())
        .bind(i64::from(record.stored.rule.priority))
        .bind(definition_json(&record.stored.rule))
        .bind(record.updated_at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Ok(record)))
    }

    /// Deletes rule `id`; false when there was none.
    pub async fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_serializes_flat_with_its_definition_beside_id_and_owner() {
        let rule: RuleDefinition = serde_json::from_value(serde_json::json!({
            "name": "Mug left",
            "conditions": [{"field": "position_key", "operator": "==", "value": "left"}],
            "actions": [{"action": "alert", "message": "Move it"}],
        }))
        .unwrap();
        let record = RuleRecord {
            stored: StoredRule {
                id: "r1".into(),
                rule,
            },
            owner: "ana".into(),
            created_at_ms: 1,
            updated_at_ms: 2,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["id"], "r1");
        assert_eq!(json["owner"], "ana");
        assert_eq!(json["name"], "Mug left");
        assert_eq!(json["priority"], 100);
        assert_eq!(json["updated_at_ms"], 2);
        assert!(json.get("rule").is_none() && json.get("stored").is_none());
    }
}
