//! Placement rules evaluated against the facts of an analysis: conditions on dotted fields,
//! actions that alert, reject or suggest an adjustment, in priority order.
//!
//! The rule bodies are those of the API ([`shared::body::rules`]), each under its id as a
//! [`StoredRule`] (the type the store and the `analysis` job hold too). Facts are a JSON object; an
//! analysis gives one fact set per mug (see [`mug_facts`]), so a rule about a mug's position is
//! tested against every mug, not only the first.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use shared::body::rules::{
    ActionKind, ConditionOperator, RuleAction, RuleCondition, RuleDefinition,
};

pub use shared::body::rules::StoredRule;

use super::analysis::Analysis;

/// One rule that matched one fact set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleMatch {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name.
    pub name: String,
    /// The rule's priority.
    pub priority: i32,
    /// The mug the facts describe, when they describe one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mug_index: Option<usize>,
    /// The rule's actions.
    pub actions: Vec<RuleAction>,
}

/// What the rules decided overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No rule rejected the placement, and none alerted.
    Accept,
    /// At least one alert, no rejection.
    Alert,
    /// At least one rule rejected the placement.
    Reject,
}

/// The outcome of evaluating rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Every match, highest priority first (ties in rule order, then mug order).
    pub matches: Vec<RuleMatch>,
    /// Reject if any matched action rejects, else alert if any alerts, else accept.
    pub verdict: Verdict,
    /// Messages of the matched alert and reject actions, in match order.
    pub messages: Vec<String>,
    /// Parameters of the matched adjust actions, in match order.
    pub adjustments: Vec<Map<String, Value>>,
    /// Rules that were skipped because they are disabled.
    pub skipped: Vec<String>,
}

/// Looks up a dotted path (`positioning.offset_mm.x`) in a JSON object; array elements are
/// addressed by index (`detections.0.class_name`).
pub fn lookup<'a>(facts: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(facts, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Whether `condition` holds for `facts`. A missing field, or a field of the wrong type for the
/// operator (a string compared with `<`), never holds; `!=` and `not_in` hold for a missing
/// field only when the field is absent altogether (nothing to be equal to). Strings compare
/// without regard to ASCII case; numbers by value.
pub fn condition_holds(condition: &RuleCondition, facts: &Value) -> bool {
    let field = lookup(facts, &condition.field);
    let target = &condition.value;
    let number = |v: &Value| v.as_f64();
    match condition.operator {
        ConditionOperator::Eq => field.is_some_and(|f| same(f, target)),
        ConditionOperator::Ne => field.is_none_or(|f| !same(f, target)),
        ConditionOperator::In => match (field, target) {
            (Some(f), Value::Array(items)) => items.iter().any(|i| same(f, i)),
            _ => false,
        },
        ConditionOperator::NotIn => match (field, target) {
            (Some(f), Value::Array(items)) => !items.iter().any(|i| same(f, i)),
            (None, Value::Array(_)) => true,
            _ => false,
        },
        ConditionOperator::Contains => match (field, target) {
            (Some(Value::String(s)), Value::String(t)) => {
                s.to_ascii_lowercase().contains(&t.to_ascii_lowercase())
            }
            (Some(Value::Array(items)), t) => items.iter().any(|i| same(i, t)),
            _ => false,
        },
        op => {
            let (Some(f), Some(t)) = (field.and_then(number), number(target)) else {
                return false;
            };
            match op {
                ConditionOperator::Lt => f < t,
                ConditionOperator::Le => f <= t,
                ConditionOperator::Gt => f > t,
                ConditionOperator::Ge => f >= t,
                ConditionOperator::AbsLt => f.abs() < t,
                ConditionOperator::AbsLe => f.abs() <= t,
                ConditionOperator::AbsGt => f.abs() > t,
                ConditionOperator::AbsGe => f.abs() >= t,
                _ => false,
            }
        }
    }
}

/// Whether every condition of `rule` holds for `facts` (a rule with no conditions never
/// matches).
pub fn rule_matches(rule: &RuleDefinition, facts: &Value) -> bool {
    !rule.conditions.is_empty() && rule.conditions.iter().all(|c| condition_holds(c, facts))
}

/// The fact sets of an analysis, one per mug, each an object with `mug_count`, `mug_index`,
/// `class_name`, `confidence`, `positioning` (the mug's [`super::positioning::Positioning`]),
/// and its `position_key`, `offset_px`, `offset_mm`, `distance_px` and `distance_mm` also at the
/// top level. With no mugs, a single set with `mug_count: 0`.
pub fn mug_facts(analysis: &Analysis) -> Vec<Value> {
    if analysis.detections.is_empty() {
        return vec![json!({ "mug_count": 0 })];
    }
    analysis
        .detections
        .iter()
        .zip(&analysis.positioning)
        .enumerate()
        .map(|(i, (detection, position))| {
            json!({
                "mug_count": analysis.mug_count,
                "mug_index": i,
                "class_name": detection.class_name,
                "confidence": detection.bbox.confidence,
                "position_key": position.position_key,
                "offset_px": position.offset_px,
                "offset_mm": position.offset_mm,
                "distance_px": position.distance_px,
                "distance_mm": position.distance_mm,
                "positioning": position,
            })
        })
        .collect()
}

/// Evaluates `rules` against each fact set in `facts`, highest priority first. A rule whose
/// conditions read only `mug_count` matches at most once, whatever the number of fact sets.
/// Disabled rules are skipped and listed.
pub fn evaluate(rules: &[StoredRule], facts: &[Value]) -> Evaluation {
    let mut order: Vec<&StoredRule> = rules.iter().collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.rule.priority));
    let mut matches = Vec::new();
    let mut skipped = Vec::new();
    for stored in order {
        let rule = &stored.rule;
        if !rule.enabled {
            skipped.push(stored.id.clone());
            continue;
        }
        let global = is_count_rule(rule);
        for set in facts {
            if rule_matches(rule, set) {
                matches.push(RuleMatch {
                    rule_id: stored.id.clone(),
                    name: rule.name.clone(),
                    priority: rule.priority,
                    mug_index: if global {
                        None
                    } else {
                        set.get("mug_index")
                            .and_then(Value::as_u64)
                            .map(|i| i as usize)
                    },
                    actions: rule.actions.clone(),
                });
                if global {
                    break;
                }
            }
        }
    }
    let mut verdict = Verdict::Accept;
    let mut messages = Vec::new();
    let mut adjustments = Vec::new();
    for action in matches.iter().flat_map(|m| &m.actions) {
        match action.action {
            ActionKind::Reject => verdict = Verdict::Reject,
            ActionKind::Alert if verdict == Verdict::Accept => verdict = Verdict::Alert,
            ActionKind::Alert => {}
            ActionKind::Adjust => adjustments.push(action.parameters.clone().unwrap_or_default()),
        }
        if action.action != ActionKind::Adjust
            && let Some(message) = &action.message
        {
            messages.push(message.clone());
        }
    }
    Evaluation {
        matches,
        verdict,
        messages,
        adjustments,
        skipped,
    }
}

/// Whether every condition of `rule` reads only `mug_count`: a rule about the picture as a
/// whole rather than about each mug.
pub fn is_count_rule(rule: &RuleDefinition) -> bool {
    rule.conditions.iter().all(|c| c.field == "mug_count")
}

/// Evaluates `rules` against every mug of `analysis` (see [`mug_facts`]). With no mug in the
/// picture only the rules about the count apply: a rule about a mug's position has no mug to be
/// about (without this, `position_key != center` would hold for the missing mug).
pub fn evaluate_analysis(rules: &[StoredRule], analysis: &Analysis) -> Evaluation {
    if analysis.detections.is_empty() {
        let count_rules: Vec<StoredRule> = rules
            .iter()
            .filter(|r| is_count_rule(&r.rule) || !r.rule.enabled)
            .cloned()
            .collect();
        return evaluate(&count_rules, &mug_facts(analysis));
    }
    evaluate(rules, &mug_facts(analysis))
}
