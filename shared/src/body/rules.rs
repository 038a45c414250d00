//! Bodies of the placement-rule routes: definitions, patches, evaluation and natural language;
//! and [`StoredRule`], a definition under the id it is stored with, as the store, the rules engine
//! and the `analysis` job all hold it.

use super::check::{
    Validate, check_charset, check_length, check_line, check_range, check_some, invalid,
    is_context_char,
};
use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest rule description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Most conditions of one rule.
pub const MAX_CONDITIONS: usize = 20;
/// Most actions of one rule.
pub const MAX_ACTIONS: usize = 10;
/// Highest rule priority (the lowest is 0).
pub const MAX_PRIORITY: i32 = 1_000;
/// Priority of a rule that states none.
pub const DEFAULT_PRIORITY: i32 = 100;
/// Longest condition field path, in characters.
pub const MAX_FIELD_CHARS: usize = 100;
/// Longest string a condition compares with, in characters.
pub const MAX_VALUE_CHARS: usize = 200;
/// Most entries of a condition's list value.
pub const MAX_LIST_VALUES: usize = 20;
/// Longest action message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Most entries of an action's parameters.
pub const MAX_PARAMETERS: usize = 20;
/// Most rule ids one evaluation names.
pub const MAX_RULE_IDS: usize = 100;
/// Longest rule id, in characters.
pub const MAX_RULE_ID_CHARS: usize = 64;
/// Longest natural-language rule text, in characters.
pub const MAX_RULE_TEXT_CHARS: usize = 1_000;

/// A placement rule: when every condition holds, its actions fire.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    /// 1 to 100 characters, no control characters.
    pub name: String,
    /// At most 1 000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 1 to 20 conditions.
    pub conditions: Vec<RuleCondition>,
    /// 1 to 10 actions.
    pub actions: Vec<RuleAction>,
    /// 0 to 1 000; [`DEFAULT_PRIORITY`] when absent.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// True when absent.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The rules context it belongs to: 1 to 100 characters of `[A-Za-z0-9_\- ]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// A rule with the id it is stored under: what the store hands the rules engine, and what an
/// `analysis` job carries (`{"id": …, "rule": {…}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRule {
    /// The rule's id.
    pub id: String,
    /// The rule itself.
    pub rule: RuleDefinition,
}

fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}

fn default_enabled() -> bool {
    true
}

/// One test of an analysis fact against a value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCondition {
    /// Dotted path of the fact: 1 to 100 characters of `[A-Za-z0-9_.]`.
    pub field: String,
    /// How the field is compared with the value.
    pub operator: ConditionOperator,
    /// A string of at most 200 characters, a number or a boolean; for `in` and `not_in` an array
    /// of at most 20 of those; for the ordering operators a number.
    pub value: Value,
}

/// How a condition compares its field with its value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionOperator {
    /// `==`: the field is equal to the value.
    #[serde(rename = "==")]
    Eq,
    /// `!=`: the field is not equal to the value.
    #[serde(rename = "!=")]
    Ne,
    /// `<`: the field is less than the value.
    #[serde(rename = "<")]
    Lt,
    /// `<=`: the field is at most the value.
    #[serde(rename = "<=")]
    Le,
    /// `>`: the field is greater than the value.
    #[serde(rename = ">")]
    Gt,
    /// `>=`: the field is at least the value.
    #[serde(rename = ">=")]
    Ge,
    /// `abs<`: the field is magnitude less than the value.
    #[serde(rename = "abs<")]
    AbsLt,
    /// `abs<=`: the field is magnitude at most the value.
    #[serde(rename = "abs<=")]
    AbsLe,
    /// `abs>`: the field is magnitude greater than the value.
    #[serde(rename = "abs>")]
    AbsGt,
    /// `abs>=`: the field is magnitude at least the value.
    #[serde(rename = "abs>=")]
    AbsGe,
    /// `in`: the field is one of the listed values.
    #[serde(rename = "in")]
    In,
    /// `not_in`: the field is none of the listed values.
    #[serde(rename = "not_in")]
    NotIn,
    /// `contains`: the field is contains the value (a substring or a list member).
    #[serde(rename = "contains")]
    Contains,
}

impl ConditionOperator {
    /// The operator as written in a rule.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionOperator::Eq => "==",
            ConditionOperator::Ne => "!=",
            ConditionOperator::Lt => "<",
            ConditionOperator::Le => "<=",
            ConditionOperator::Gt => ">",
            ConditionOperator::Ge => ">=",
            ConditionOperator::AbsLt => "abs<",
            ConditionOperator::AbsLe => "abs<=",
            ConditionOperator::AbsGt => "abs>",
            ConditionOperator::AbsGe => "abs>=",
            ConditionOperator::In => "in",
            ConditionOperator::NotIn => "not_in",
            ConditionOperator::Contains => "contains",
        }
    }

    /// Whether the value is a list of candidates (`in`, `not_in`).
    pub const fn takes_list(self) -> bool {
        matches!(self, ConditionOperator::In | ConditionOperator::NotIn)
    }

    /// Whether the value must be a number (`<`, `<=`, `>`, `>=` and their `abs` forms).
    pub const fn takes_number(self) -> bool {
        matches!(
            self,
            ConditionOperator::Lt
                | ConditionOperator::Le
                | ConditionOperator::Gt
                | ConditionOperator::Ge
                | ConditionOperator::AbsLt
                | ConditionOperator::AbsLe
                | ConditionOperator::AbsGt
                | ConditionOperator::AbsGe
        )
    }
}

/// What a rule does when it matches.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    /// What kind of action it is.
    pub action: ActionKind,
    /// At most 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// At most 20 entries, each name 1 to 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameters: Option<Map<String, Value>>,
}

/// The kinds of rule action.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Tell the user, keep the result.
    Alert,
    /// Mark the placement as refused.
    Reject,
    /// Suggest a corrected placement.
    Adjust,
}

/// A partial update of a rule: the fields present replace the stored ones, under the same limits
/// as [`RuleDefinition`]. At least one field must be present; `null` counts as absent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    /// Replaces the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Replaces the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces all conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<RuleCondition>>,
    /// Replaces all actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<RuleAction>>,
    /// Replaces the priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Enables or disables the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replaces the rules context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Evaluates rules against the facts of an analysis.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEvaluateRequest {
    /// The rules to evaluate (all the caller's when absent): at most 100 ids, each 1 to 64
    /// characters of `[A-Za-z0-9_-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_ids: Option<Vec<String>>,
    /// The analysis facts, a JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Value,
}

/// Asks the backend to draft a rule from a sentence.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaturalLanguageRuleRequest {
    /// 1 to 1 000 characters.
    pub text: String,
    /// The drafted rule's name, as in [`RuleDefinition::name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Saves the drafted rule as the caller's when true; false when absent (draft only).
    #[serde(default)]
    pub save: bool,
    /// The rules context of the drafted rule, as in [`RuleDefinition::context`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl Validate for RuleDefinition {
    fn validate(&self) -> Result<(), Problem> {
        check_name(&self.name)?;
        check_some(self.description.as_deref(), check_description)?;
        check_conditions(&self.conditions)?;
        check_actions(&self.actions)?;
        check_priority(self.priority)?;
        check_some(self.context.as_deref(), check_context)
    }
}

impl Validate for RulePatch {
    fn validate(&self) -> Result<(), Problem> {
        let RulePatch {
            name,
            description,
            conditions,
            actions,
            priority,
            enabled,
            context,
        } = self;
        let any = name.is_some()
            || description.is_some()
            || conditions.is_some()
            || actions.is_some()
            || priority.is_some()
            || enabled.is_some()
            || context.is_some();
        if !any {
            return Err(invalid("body", "a patch must change at least one field"));
        }
        check_some(name.as_deref(), check_name)?;
        check_some(description.as_deref(), check_description)?;
        check_some(conditions.as_deref(), check_conditions)?;
        check_some(actions.as_deref(), check_actions)?;
        check_some(priority.as_ref(), |&priority| check_priority(priority))?;
        check_some(context.as_deref(), check_context)
    }
}

impl Validate for RuleCondition {
    fn validate(&self) -> Result<(), Problem> {
        self.check_at("condition")
    }
}

impl RuleCondition {
    fn check_at(&self, path: &str) -> Result<(), Problem> {
        check_charset(
            &format!("{path}.field"),
            &self.field,
            1,
            MAX_FIELD_CHARS,
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'),
            "letters, digits, '_' and '.'",
        )?;
        let value_path = format!("{path}.value");
        let operator = self.operator.as_str();
        match &self.value {
            Value::Array(items) if self.operator.takes_list() => {
                if items.len() > MAX_LIST_VALUES {
                    return Err(invalid(
                        &value_path,
                        format!("lists at most {MAX_LIST_VALUES} values"),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    check_scalar(&format!("{value_path}[{i}]"), item)?;
                }
                Ok(())
            }
            _ if self.operator.takes_list() => Err(invalid(
                &value_path,
                format!("must be an array for `{operator}`"),
            )),
            Value::Number(_) if self.operator.takes_number() => {
                check_scalar(&value_path, &self.value)
            }
            _ if self.operator.takes_number() => Err(invalid(
                &value_path,
                format!("must be a number for `{operator}`"),
            )),
            scalar => check_scalar(&value_path, scalar),
        }
    }
}

impl Validate for RuleAction {
    fn validate(&self) -> Result<(), Problem> {
        self.check_at("action")
    }
}

impl RuleAction {
    fn check_at(&self, path: &str) -> Result<(), Problem> {
        check_some(self.message.as_deref(), |message| {
            check_length(&format!("{path}.message"), message, 0, MAX_MESSAGE_CHARS)
        })?;
        check_some(self.parameters.as_ref(), |parameters| {
            let parameters_path = format!("{path}.parameters");
            if parameters.len() > MAX_PARAMETERS {
                return Err(invalid(
                    &parameters_path,
                    format!("has at most {MAX_PARAMETERS} entries"),
                ));
            }
            parameters
                .keys()
                .try_for_each(|key| check_line(&parameters_path, key, 1, MAX_NAME_CHARS))
        })
    }
}

impl Validate for RuleEvaluateRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_some(self.rule_ids.as_deref(), |ids| {
            if ids.len() > MAX_RULE_IDS {
                return Err(invalid(
                    "rule_ids",
                    format!("names at most {MAX_RULE_IDS} rules"),
                ));
            }
            ids.iter().enumerate().try_for_each(|(i, id)| {
                check_charset(
                    &format!("rule_ids[{i}]"),
                    id,
                    1,
                    MAX_RULE_ID_CHARS,
                    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
                    "letters, digits, '_' and '-'",
                )
            })
        })?;
        if !self.context.is_object() {
            return Err(invalid("context", "must be an object of analysis facts"));
        }
        Ok(())
    }
}

impl Validate for NaturalLanguageRuleRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_length("text", &self.text, 1, MAX_RULE_TEXT_CHARS)?;
        check_some(self.name.as_deref(), check_name)?;
        check_some(self.context.as_deref(), check_context)
    }
}

fn check_name(name: &str) -> Result<(), Problem> {
    check_line("name", name, 1, MAX_NAME_CHARS)
}

fn check_description(description: &str) -> Result<(), Problem> {
    check_length("description", description, 0, MAX_DESCRIPTION_CHARS)
}

fn check_priority(priority: i32) -> Result<(), Problem> {
    check_range("priority", priority, 0, MAX_PRIORITY)
}

fn check_context(context: &str) -> Result<(), Problem> {
    check_charset(
        "context",
        context,
        1,
        100,
        is_context_char,
        "letters, digits, '_', '-' and spaces",
    )
}

fn check_conditions(conditions: &[RuleCondition]) -> Result<(), Problem> {
    if conditions.is_empty() || conditions.len() > MAX_CONDITIONS {
        return Err(invalid(
            "conditions",
            format!("a rule has 1 to {MAX_CONDITIONS} conditions"),
        ));
    }
    conditions
        .iter()
        .enumerate()
        .try_for_each(|(i, condition)| condition.check_at(&format!("conditions[{i}]")))
}

fn check_actions(actions: &[RuleAction]) -> Result<(), Problem> {
    if actions.is_empty() || actions.len() > MAX_ACTIONS {
        return Err(invalid(
            "actions",
            format!("a rule has 1 to {MAX_ACTIONS} actions"),
        ));
    }
    actions
        .iter()
        .enumerate()
        .try_for_each(|(i, action)| action.check_at(&format!("actions[{i}]")))
}

/// A string of at most [`MAX_VALUE_CHARS`], a finite number or a boolean.
fn check_scalar(path: &str, value: &Value) -> Result<(), Problem> {
    match value {
        Value::String(text) => check_length(path, text, 0, MAX_VALUE_CHARS),
        Value::Number(number) if number.as_f64().is_some_and(f64::is_finite) => Ok(()),
        Value::Bool(_) => Ok(()),
        _ => Err(invalid(
            path,
            "must be a string, a finite number or a boolean",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse_valid;
    use crate::problem::ErrorCode;
    use serde_json::json;

    fn rule() -> Value {
        json!({
            "name": "Mug near keyboard",
            "description": "Keep mugs away from the keyboard",
            "conditions": [{"field": "mug.distance_to.keyboard_mm", "operator": "<", "value": 150}],
            "actions": [{"action": "alert", "message": "Move the mug", "parameters": {"severity": "high"}}],
            "context": "office desk"
        })
    }

    fn check(value: &Value) -> Result<RuleDefinition, Problem> {
        parse_valid::<RuleDefinition>(&serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_stored_rule_is_its_id_beside_its_definition() {
        let stored = StoredRule {
            id: "rule-1".into(),
            rule: check(&rule()).unwrap(),
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["id"], "rule-1");
        assert_eq!(json["rule"]["name"], "Mug near keyboard");
        assert_eq!(json.as_object().unwrap().len(), 2);
        assert_eq!(serde_json::from_value::<StoredRule>(json).unwrap(), stored);
        let extra = json!({"id": "rule-1", "rule": rule(), "owner": "ana"});
        assert!(serde_json::from_value::<StoredRule>(extra).is_err());
    }

    fn refusal(value: &Value) -> (ErrorCode, String) {
        let problem = check(value).unwrap_err();
        assert_eq!(problem.errors.len(), 1, "{problem:?}");
        (problem.code, problem.errors[0].field.clone())
    }

    fn failed(field: &str) -> (ErrorCode, String) {
        (ErrorCode::ValidationFailed, field.to_owned())
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut body = rule();
        let mut target = &mut body;
        for key in path {
            target = match key.parse::<usize>() {
                Ok(index) => &mut target[index],
                Err(_) => &mut target[*key],
            };
        }
        *target = value;
        body
    }

    #[test]
    fn accepts_a_rule_and_fills_defaults() {
        let parsed = check(&rule()).unwrap();
        assert_eq!(parsed.priority, 100);
        assert!(parsed.enabled);
        assert_eq!(parsed.conditions[0].operator, ConditionOperator::Lt);
        assert_eq!(parsed.actions[0].action, ActionKind::Alert);
        let round_trip = serde_json::to_value(&parsed).unwrap();
        assert_eq!(round_trip["conditions"][0]["operator"], "<");
        assert_eq!(check(&round_trip).unwrap(), parsed);
    }

    #[test]
    fn every_operator_has_its_wire_spelling() {
        let all = [
            ConditionOperator::Eq,
            ConditionOperator::Ne,
            ConditionOperator::Lt,
            ConditionOperator::Le,
            ConditionOperator::Gt,
            ConditionOperator::Ge,
            ConditionOperator::AbsLt,
            ConditionOperator::AbsLe,
            ConditionOperator::AbsGt,
            ConditionOperator::AbsGe,
            ConditionOperator::In,
            ConditionOperator::NotIn,
            ConditionOperator::Contains,
        ];
        let spelled: Vec<_> = all.iter().map(|op| op.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "==", "!=", "<", "<=", ">", ">=", "abs<", "abs<=", "abs>", "abs>=", "in", "not_in",
                "contains"
            ]
        );
        for op in all {
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
            assert_eq!(
                serde_json::from_value::<ConditionOperator>(json!(op.as_str())).unwrap(),
                op
            );
        }
        assert_eq!(
            refusal(&with(&["conditions", "0", "operator"], json!("=~"))),
            (ErrorCode::InvalidJson, "conditions[0].operator".to_owned())
        );
        assert_eq!(serde_json::to_value(ActionKind::Adjust).unwrap(), "adjust");
        assert_eq!(
            refusal(&with(&["actions", "0", "action"], json!("Alert"))).0,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn name_description_priority_and_context_limits() {
        assert!(check(&with(&["name"], json!("n"))).is_ok());
        assert!(check(&with(&["name"], json!("n".repeat(100)))).is_ok());
        assert_eq!(refusal(&with(&["name"], json!(""))), failed("name"));
        assert_eq!(
            refusal(&with(&["name"], json!("n".repeat(101)))),
            failed("name")
        );
        assert_eq!(
            refusal(&with(&["name"], json!("a\u{1b}[31mb"))),
            failed("name")
        );
        assert!(check(&with(&["description"], json!("d".repeat(1000)))).is_ok());
        assert_eq!(
            refusal(&with(&["description"], json!("d".repeat(1001)))),
            failed("description")
        );
        for ok in [0, 1000] {
            assert_eq!(check(&with(&["priority"], json!(ok))).unwrap().priority, ok);
        }
        assert_eq!(refusal(&with(&["priority"], json!(-1))), failed("priority"));
        assert_eq!(
            refusal(&with(&["priority"], json!(1001))),
            failed("priority")
        );
        assert!(!check(&with(&["enabled"], json!(false))).unwrap().enabled);
        assert!(check(&with(&["context"], json!("c".repeat(100)))).is_ok());
        assert_eq!(
            refusal(&with(&["context"], json!("c".repeat(101)))),
            failed("context")
        );
        assert_eq!(
            refusal(&with(&["context"], json!("a/b"))),
            failed("context")
        );
    }

    #[test]
    fn conditions_and_actions_are_counted() {
        let condition = rule()["conditions"][0].clone();
        assert!(check(&with(&["conditions"], json!(vec![condition.clone(); 20]))).is_ok());
        assert_eq!(
            refusal(&with(&["conditions"], json!(vec![condition; 21]))),
            failed("conditions")
        );
        assert_eq!(
            refusal(&with(&["conditions"], json!([]))),
            failed("conditions")
        );
        let action = rule()["actions"][0].clone();
        assert!(check(&with(&["actions"], json!(vec![action.clone(); 10]))).is_ok());
        assert_eq!(
            refusal(&with(&["actions"], json!(vec![action; 11]))),
            failed("actions")
        );
        assert_eq!(refusal(&with(&["actions"], json!([]))), failed("actions"));
    }

    #[test]
    fn condition_fields_and_values_are_bounded() {
        assert!(check(&with(&["conditions", "0", "field"], json!("f".repeat(100)))).is_ok());
        assert_eq!(
            refusal(&with(&["conditions", "0", "field"], json!("f".repeat(101)))),
            failed("conditions[0].field")
        );
        assert_eq!(
            refusal(&with(&["conditions", "0", "field"], json!("mug[0]"))),
            failed("conditions[0].field")
        );
        assert_eq!(
            refusal(&with(&["conditions", "0", "field"], json!(""))),
            failed("conditions[0].field")
        );

        let condition = |operator: &str, value: Value| {
            with(
                &["conditions", "0"],
                json!({"field": "f", "operator": operator, "value": value}),
            )
        };
        assert!(check(&condition("==", json!("s".repeat(200)))).is_ok());
        assert_eq!(
            refusal(&condition("==", json!("s".repeat(201)))),
            failed("conditions[0].value")
        );
        assert!(check(&condition("!=", json!(true))).is_ok());
        assert!(check(&condition("contains", json!("cup"))).is_ok());
        assert_eq!(
            refusal(&condition("==", json!(null))),
            failed("conditions[0].value")
        );
        assert_eq!(
            refusal(&condition("==", json!({"a": 1}))),
            failed("conditions[0].value")
        );
        assert_eq!(
            refusal(&condition("==", json!([1, 2]))),
            failed("conditions[0].value")
        );
        assert!(check(&condition("abs>=", json!(-2.5))).is_ok());
        assert_eq!(
            refusal(&condition(">", json!("5"))),
            failed("conditions[0].value")
        );
        assert!(check(&condition("in", json!(vec!["a"; 20]))).is_ok());
        assert!(check(&condition("not_in", json!([1, "b", false]))).is_ok());
        assert_eq!(
            refusal(&condition("in", json!(vec!["a"; 21]))),
            failed("conditions[0].value")
        );
        assert_eq!(
            refusal(&condition("in", json!("a"))),
            failed("conditions[0].value")
        );
        assert_eq!(
            refusal(&condition("in", json!([1, [2]]))),
            failed("conditions[0].value[1]")
        );
        assert_eq!(
            refusal(&condition("in", json!(["ok", "s".repeat(201)]))),
            failed("conditions[0].value[1]")
        );
        let overflow = br#"{"name":"n","conditions":[{"field":"f","operator":"<","value":1e999}],"actions":[{"action":"alert"}]}"#;
        let problem = parse_valid::<RuleDefinition>(overflow).unwrap_err();
        assert_eq!(
            (problem.code, problem.errors[0].field.as_str()),
            (ErrorCode::InvalidJson, "conditions[0].value")
        );
    }

    #[test]
    fn action_messages_and_parameters_are_bounded() {
        assert!(check(&with(&["actions", "0", "message"], json!("m".repeat(500)))).is_ok());
        assert_eq!(
            refusal(&with(&["actions", "0", "message"], json!("m".repeat(501)))),
            failed("actions[0].message")
        );
        let parameters =
            |n: usize| Value::Object((0..n).map(|i| (format!("p{i}"), json!(i))).collect());
        assert!(check(&with(&["actions", "0", "parameters"], parameters(20))).is_ok());
        assert_eq!(
            refusal(&with(&["actions", "0", "parameters"], parameters(21))),
            failed("actions[0].parameters")
        );
        assert_eq!(
            refusal(&with(&["actions", "0", "parameters"], json!({"": 1}))),
            failed("actions[0].parameters")
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let cases = [
            (with(&["owner"], json!("x")), "owner"),
            (
                with(&["conditions", "0", "weight"], json!(1)),
                "conditions[0].weight",
            ),
            (
                with(&["actions", "0", "target"], json!("x")),
                "actions[0].target",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(refusal(&body), (ErrorCode::UnknownField, field.to_owned()));
        }
    }

    #[test]
    fn patches_change_at_least_one_field_within_the_same_limits() {
        let patch = |value: Value| parse_valid::<RulePatch>(&serde_json::to_vec(&value).unwrap());
        assert_eq!(
            patch(json!({"enabled": false})).unwrap().enabled,
            Some(false)
        );
        assert_eq!(
            patch(json!({"priority": 1000})).unwrap().priority,
            Some(1000)
        );
        let empty = patch(json!({})).unwrap_err();
        assert_eq!(
            (empty.code, empty.errors[0].field.as_str()),
            (ErrorCode::ValidationFailed, "body")
        );
        assert_eq!(
            patch(json!({"name": null})).unwrap_err().code,
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            patch(json!({"priority": 1001})).unwrap_err().errors[0].field,
            "priority"
        );
        assert_eq!(
            patch(json!({"conditions": []})).unwrap_err().errors[0].field,
            "conditions"
        );
        assert_eq!(
            patch(json!({"name": "n".repeat(101)})).unwrap_err().errors[0].field,
            "name"
        );
        assert_eq!(
            patch(json!({"id": "r1"})).unwrap_err().code,
            ErrorCode::UnknownField
        );
    }

    #[test]
    fn evaluation_requests_name_few_rules_and_carry_an_object() {
        let evaluate =
            |value: Value| parse_valid::<RuleEvaluateRequest>(&serde_json::to_vec(&value).unwrap());
        assert!(evaluate(json!({"context": {"mugs": 2}})).is_ok());
        let ids: Vec<String> = (0..100).map(|i| format!("rule-{i}")).collect();
        assert_eq!(
            evaluate(json!({"rule_ids": ids, "context": {}}))
                .unwrap()
                .rule_ids
                .unwrap()
                .len(),
            100
        );
        let too_many: Vec<String> = (0..101).map(|i| format!("rule-{i}")).collect();
        assert_eq!(
            evaluate(json!({"rule_ids": too_many, "context": {}}))
                .unwrap_err()
                .errors[0]
                .field,
            "rule_ids"
        );
        assert_eq!(
            evaluate(json!({"rule_ids": ["ok", "no/pe"], "context": {}}))
                .unwrap_err()
                .errors[0]
                .field,
            "rule_ids[1]"
        );
        assert_eq!(
            evaluate(json!({"rule_ids": ["r".repeat(65)], "context": {}}))
                .unwrap_err()
                .errors[0]
                .field,
            "rule_ids[0]"
        );
        let not_object = evaluate(json!({"context": [1]})).unwrap_err();
        assert_eq!(
            (not_object.code, not_object.errors[0].field.as_str()),
            (ErrorCode::ValidationFailed, "context")
        );
        assert_eq!(
            evaluate(json!({"rule_ids": []})).unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn natural_language_text_is_one_to_a_thousand_characters() {
        let draft = |value: Value| {
            parse_valid::<NaturalLanguageRuleRequest>(&serde_json::to_vec(&value).unwrap())
        };
        assert!(draft(json!({"text": "t"})).is_ok());
        assert!(draft(json!({"text": "é".repeat(1000), "name": "Draft"})).is_ok());
        assert_eq!(
            draft(json!({"text": ""})).unwrap_err().errors[0].field,
            "text"
        );
        assert_eq!(
            draft(json!({"text": "t".repeat(1001)})).unwrap_err().errors[0].field,
            "text"
        );
        assert_eq!(
            draft(json!({"text": "t", "name": ""})).unwrap_err().errors[0].field,
            "name"
        );
        assert_eq!(
            draft(json!({"text": "t", "lang": "en"})).unwrap_err().code,
            ErrorCode::UnknownField
        );
    }
}
