//! Drafts a placement rule from an English sentence ("reject when there are more than two
//! mugs", "keep the mug within 50 mm of the centre"). The parser is a fixed set of phrase
//! patterns: the same sentence always gives the same rule, and nothing leaves the process.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use shared::body::rules::{
    ActionKind, ConditionOperator, DEFAULT_PRIORITY, MAX_NAME_CHARS, MAX_RULE_TEXT_CHARS,
    RuleAction, RuleCondition, RuleDefinition,
};

/// A drafted rule and how sure the parser is of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedRule {
    /// The rule.
    pub rule: RuleDefinition,
    /// The rule in plain words, to show the user before saving.
    pub interpretation: String,
    /// 0 to 1: 0.95 when every part was stated, less for each assumption.
    pub confidence: f32,
    /// What was assumed or ignored.
    pub warnings: Vec<String>,
}

/// Why no rule could be drafted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    /// The text is empty or only punctuation.
    #[error("the rule text is empty")]
    Empty,
    /// The text is longer than the API accepts.
    #[error("the rule text is longer than {MAX_RULE_TEXT_CHARS} characters")]
    TooLong,
    /// No condition could be recognised.
    #[error(
        "no condition recognised in {0:?}; try e.g. \"alert if the mug is near the left edge\""
    )]
    NotUnderstood(String),
}

const NUMBER_WORDS: [(&str, f64); 13] = [
    ("zero", 0.0),
    ("one", 1.0),
    ("single", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("twenty", 20.0),
];

const MUG_WORDS: [&str; 6] = ["mug", "mugs", "cup", "cups", "objects", "items"];

fn normalise(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    let mut spaced = String::with_capacity(lowered.len());
    for c in lowered.chars() {
        if c.is_alphanumeric() || c == '.' || c == '%' || c == '-' {
            spaced.push(c);
        } else {
            spaced.push(' ');
        }
    }
    spaced
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '.' || c == '-'))
        .filter(|w| !w.is_empty())
        .flat_map(split_unit)
        .map(|w| match w.as_str() {
            "centre" | "middle" | "centred" | "centered" => {
                if w.ends_with('d') {
                    "centered".to_owned()
                } else {
                    "center".to_owned()
                }
            }
            "millimetres" | "millimeters" | "millimetre" | "millimeter" => "mm".to_owned(),
            "centimetres" | "centimeters" | "centimetre" | "centimeter" => "cm".to_owned(),
            "pixels" | "pixel" => "px".to_owned(),
            "upper" => "top".to_owned(),
            "lower" => "bottom".to_owned(),
            "farther" | "further" => "further".to_owned(),
            _ => w,
        })
        .collect()
}

/// Splits "50mm" into "50" and "mm".
fn split_unit(word: &str) -> Vec<String> {
    for unit in ["mm", "cm", "px"] {
        if let Some(number) = word.strip_suffix(unit)
            && number.parse::<f64>().is_ok()
        {
            return vec![number.to_owned(), unit.to_owned()];
        }
    }
    vec![word.to_owned()]
}

fn number(word: &str) -> Option<f64> {
    if let Some(p) = word.strip_suffix('%') {
        return p
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| v / 100.0);
    }
    word.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .or_else(|| {
            NUMBER_WORDS
                .iter()
                .find(|(w, _)| *w == word)
                .map(|(_, v)| *v)
        })
}

fn has(words: &[String], w: &str) -> bool {
    words.iter().any(|x| x == w)
}

fn has_phrase(words: &[String], phrase: &str) -> bool {
    let parts: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(parts.len())
        .any(|win| win.iter().zip(&parts).all(|(a, b)| a == b))
}

fn num_value(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// Comparison phrases, longest first, and the operator each means.
const COMPARISONS: [(&str, ConditionOperator); 18] = [
    ("no more than", ConditionOperator::Le),
    ("not more than", ConditionOperator::Le),
    ("no fewer than", ConditionOperator::Ge),
    ("more than", ConditionOperator::Gt),
    ("greater than", ConditionOperator::Gt),
    ("further than", ConditionOperator::Gt),
    ("over", ConditionOperator::Gt),
    ("above", ConditionOperator::Gt),
    ("exceeds", ConditionOperator::Gt),
    ("fewer than", ConditionOperator::Lt),
    ("less than", ConditionOperator::Lt),
    ("closer than", ConditionOperator::Lt),
    ("under", ConditionOperator::Lt),
    ("below", ConditionOperator::Lt),
    ("at least", ConditionOperator::Ge),
    ("at most", ConditionOperator::Le),
    ("up to", ConditionOperator::Le),
    ("exactly", ConditionOperator::Eq),
];

/// A number found after a comparison phrase: (operator, value, index just past the number).
fn comparison_at(words: &[String], i: usize) -> Option<(ConditionOperator, f64, usize)> {
    for (phrase, op) in COMPARISONS {
        let parts: Vec<&str> = phrase.split(' ').collect();
        if i + parts.len() < words.len()
            && words[i..i + parts.len()]
                .iter()
                .zip(&parts)
                .all(|(a, b)| a == b)
        {
            let mut j = i + parts.len();
            if words.get(j).is_some_and(|w| w == "a" || w == "the") {
                j += 1;
            }
            if let Some(v) = words.get(j).and_then(|w| number(w)) {
                return Some((op, v, j + 1));
            }
        }
    }
    None
}

struct Draft {
    conditions: Vec<RuleCondition>,
    phrases: Vec<String>,
    warnings: Vec<String>,
    confidence: f32,
    used_numbers: usize,
    adjust: Option<Map<String, Value>>,
}

impl Draft {
    fn add(&mut self, field: &str, operator: ConditionOperator, value: Value, phrase: String) {
        self.conditions.push(RuleCondition {
            field: field.to_owned(),
            operator,
            value,
        });
        self.phrases.push(phrase);
    }
}

fn op_words(op: ConditionOperator) -> &'static str {
    match op {
        ConditionOperator::Gt => "more than",
        ConditionOperator::Ge => "at least",
        ConditionOperator::Lt => "less than",
        ConditionOperator::Le => "at most",
        ConditionOperator::Eq => "exactly",
        _ => "compared with",
    }
}

fn unit_after(words: &[String], j: usize, draft: &mut Draft) -> (&'static str, f64) {
    match words.get(j).map(String::as_str) {
        Some("mm") => ("mm", 1.0),
        Some("cm") => ("mm", 10.0),
        Some("px") => ("px", 1.0),
        _ => {
            draft
                .warnings
                .push("no unit given; millimetres assumed".to_owned());
            draft.confidence -= 0.15;
            ("mm", 1.0)
        }
    }
}

fn parse_distances(words: &[String], draft: &mut Draft) {
    let mut i = 0;
    while i < words.len() {
        let within = words[i] == "within";
        let compared = comparison_at(words, i);
        let (op, value, j) = if within {
            match words.get(i + 1).and_then(|w| number(w)) {
                Some(v) => (ConditionOperator::Le, v, i + 2),
                None => {
                    i += 1;
                    continue;
                }
            }
        } else if let Some(found) = compared {
            found
        } else {
            i += 1;
            continue;
        };
        let unit_word = words.get(j).map(String::as_str);
        let distance_words = [
            "of",
            "from",
            "to",
            "away",
            "left",
            "right",
            "horizontally",
            "vertically",
            "off",
        ];
        let is_distance = matches!(unit_word, Some("mm" | "cm" | "px"))
            || (words
                .get(j)
                .is_some_and(|w| distance_words.contains(&w.as_str()))
                && !MUG_WORDS.contains(&unit_word.unwrap_or("")));
        if !is_distance || MUG_WORDS.contains(&unit_word.unwrap_or("")) {
            i += 1;
            continue;
        }
        let (unit, factor) = unit_after(words, j, draft);
        let value = value * factor;
        let rest = &words[i.saturating_sub(4)..words.len().min(j + 6)];
        let direction = [
            "left",
            "right",
            "above",
            "below",
            "horizontally",
            "vertically",
        ]
        .into_iter()
        .find(|d| rest.iter().any(|w| w == d));
        draft.used_numbers += 1;
        let shown = format!("{} {unit}", num_value(value));
        match (within, direction) {
            (true, _) => {
                let field = format!("distance_{unit}");
                draft.add(
                    &field,
                    ConditionOperator::Gt,
                    num_value(value),
                    format!("the mug is more than {shown} from the reference point"),
                );
                let mut parameters = Map::new();
                parameters.insert("target".to_owned(), json!("center"));
                parameters.insert(format!("max_distance_{unit}"), num_value(value));
                draft.adjust = Some(parameters);
            }
            (false, Some("horizontally")) => {
                draft.add(
                    &format!("offset_{unit}.x"),
                    abs_op(op),
                    num_value(value),
                    format!("the horizontal offset is {} {shown}", op_words(op)),
                );
            }
            (false, Some("vertically")) => {
                draft.add(
                    &format!("offset_{unit}.y"),
                    abs_op(op),
                    num_value(value),
                    format!("the vertical offset is {} {shown}", op_words(op)),
                );
            }
            (false, Some(side)) => {
                let (axis, sign) = match side {
                    "left" => ("x", -1.0),
                    "right" => ("x", 1.0),
                    "above" => ("y", -1.0),
                    _ => ("y", 1.0),
                };
                let op = if sign < 0.0 { mirror(op) } else { op };
                draft.add(
                    &format!("offset_{unit}.{axis}"),
                    op,
                    num_value(sign * value),
                    format!(
                        "the mug is {} {shown} {side} of the reference point",
                        op_words(if sign < 0.0 { mirror(op) } else { op })
                    ),
                );
            }
            (false, None) => {
                draft.add(
                    &format!("distance_{unit}"),
                    op,
                    num_value(value),
                    format!(
                        "the mug is {} {shown} from the reference point",
                        op_words(op)
                    ),
                );
            }
        }
        i = j + 1;
    }
}

fn abs_op(op: ConditionOperator) -> ConditionOperator {
    match op {
        ConditionOperator::Gt => ConditionOperator::AbsGt,
        ConditionOperator::Ge => ConditionOperator::AbsGe,
        ConditionOperator::Lt => ConditionOperator::AbsLt,
        ConditionOperator::Le => ConditionOperator::AbsLe,
        other => other,
    }
}

/// The operator for a negated axis: "more than 30 mm left" is `x < -30`.
fn mirror(op: ConditionOperator) -> ConditionOperator {
    match op {
        ConditionOperator::Gt => ConditionOperator::Lt,
        ConditionOperator::Ge => ConditionOperator::Le,
        ConditionOperator::Lt => ConditionOperator::Gt,
        ConditionOperator::Le => ConditionOperator::Ge,
        other => other,
    }
}

/// A condition on the number of mugs, read from one number in the text.
fn add_count(draft: &mut Draft, op: ConditionOperator, v: f64) {
    draft.used_numbers += 1;
    draft.add(
        "mug_count",
        op,
        num_value(v),
        format!("there are {} {} mugs", op_words(op), num_value(v)),
    );
}

fn parse_counts(words: &[String], draft: &mut Draft) {
    let mug_near = |j: usize| {
        words[j..words.len().min(j + 2)]
            .iter()
            .any(|w| MUG_WORDS.contains(&w.as_str()))
    };
    for i in 0..words.len() {
        if let Some((op, v, j)) = comparison_at(words, i)
            && j < words.len()
            && mug_near(j)
        {
            add_count(draft, op, v);
            return;
        }
        if let Some(v) = number(&words[i])
            && i + 2 < words.len()
            && words[i + 1] == "or"
            && mug_near(i + 3)
        {
            let op = match words[i + 2].as_str() {
                "more" => Some(ConditionOperator::Ge),
                "fewer" | "less" => Some(ConditionOperator::Le),
                _ => None,
            };
            if let Some(op) = op {
                add_count(draft, op, v);
                return;
            }
        }
    }
    for phrase in [
        "no mug",
        "no mugs",
        "no cup",
        "no cups",
        "zero mugs",
        "without a mug",
        "mug is missing",
        "empty",
    ] {
        if has_phrase(words, phrase) {
            draft.add(
                "mug_count",
                ConditionOperator::Eq,
                json!(0),
                "there is no mug".to_owned(),
            );
            return;
        }
    }
    for phrase in [
        "multiple mugs",
        "several mugs",
        "many mugs",
        "more mugs",
        "multiple cups",
        "several cups",
    ] {
        if has_phrase(words, phrase) {
            draft.add(
                "mug_count",
                ConditionOperator::Gt,
                json!(1),
                "there is more than one mug".to_owned(),
            );
            return;
        }
    }
    for (i, w) in words.iter().enumerate() {
        if let Some(v) = number(w)
            && i + 1 < words.len()
            && MUG_WORDS.contains(&words[i + 1].as_str())
            && (i == 0 || !matches!(words[i - 1].as_str(), "the" | "a"))
            && has_phrase(words, "there are")
        {
            draft.used_numbers += 1;
            draft.add(
                "mug_count",
                ConditionOperator::Eq,
                num_value(v),
                format!("there are exactly {} mugs", num_value(v)),
            );
            return;
        }
    }
}

fn parse_positions(words: &[String], draft: &mut Draft) {
    let negated = [
        "not in the center",
        "not centered",
        "not at the center",
        "off center",
        "away from the center",
        "outside the center",
        "isn't centered",
        "isn't in the center",
    ]
    .iter()
    .any(|p| has_phrase(words, p));
    let corners = [
        ("top left", "top_left"),
        ("top right", "top_right"),
        ("bottom left", "bottom_left"),
        ("bottom right", "bottom_right"),
    ];
    for (phrase, key) in corners {
        if has_phrase(words, phrase) {
            draft.add(
                "positioning.position_key",
                ConditionOperator::Eq,
                json!(key),
                format!("the mug is in the {phrase} corner"),
            );
            return;
        }
    }
    let edges = [
        ("left", "left_edge", ["top_left", "bottom_left"]),
        ("right", "right_edge", ["top_right", "bottom_right"]),
        ("top", "top_edge", ["top_left", "top_right"]),
        ("bottom", "bottom_edge", ["bottom_left", "bottom_right"]),
    ];
    let near_edge = has(words, "edge") || has(words, "side") || has(words, "border");
    for (side, key, corner_keys) in edges {
        let named = has_phrase(words, &format!("{side} edge"))
            || has_phrase(words, &format!("{side} side"))
            || has_phrase(words, &format!("the {side}"))
            || has_phrase(words, &format!("{side} border"));
        if named {
            draft.add(
                "positioning.position_key",
                ConditionOperator::In,
                json!([key, corner_keys[0], corner_keys[1]]),
                format!("the mug is near the {side} edge (corners included)"),
            );
            return;
        }
    }
    if has(words, "corner") || has(words, "corners") {
        draft.add(
            "positioning.position_key",
            ConditionOperator::In,
            json!(["top_left", "top_right", "bottom_left", "bottom_right"]),
            "the mug is in a corner".to_owned(),
        );
        return;
    }
    if negated || (near_edge && !has(words, "center")) {
        draft.add(
            "positioning.position_key",
            ConditionOperator::Ne,
            json!("center"),
            "the mug is not in the center of the frame".to_owned(),
        );
        return;
    }
    if has(words, "center") || has(words, "centered") {
        draft.add(
            "positioning.position_key",
            ConditionOperator::Eq,
            json!("center"),
            "the mug is in the center of the frame".to_owned(),
        );
    }
}

fn parse_confidence(words: &[String], draft: &mut Draft) {
    let Some(at) = words
        .iter()
        .position(|w| w == "confidence" || w == "certainty" || w == "score")
    else {
        return;
    };
    for i in at..words.len().min(at + 6) {
        if let Some((op, v, _)) = comparison_at(words, i)
            && (0.0..=1.0).contains(&v)
        {
            draft.used_numbers += 1;
            draft.add(
                "confidence",
                op,
                num_value(v),
                format!(
                    "the detection confidence is {} {}",
                    op_words(op),
                    num_value(v)
                ),
            );
            return;
        }
    }
}

fn action_of(words: &[String], draft: &mut Draft) -> ActionKind {
    let reject = [
        "reject", "refuse", "deny", "block", "fail", "forbid", "disallow", "invalid",
    ]
    .iter()
    .any(|w| words.iter().any(|x| x.starts_with(w)));
    let alert = [
        "alert", "warn", "notify", "flag", "tell", "report", "inform",
    ]
    .iter()
    .any(|w| words.iter().any(|x| x.starts_with(w)));
    let adjust = ["keep", "move", "adjust", "stay", "place", "put", "center"]
        .iter()
        .any(|w| words.first().is_some_and(|x| x == w))
        || has_phrase(words, "should be")
        || has_phrase(words, "must be")
        || has_phrase(words, "needs to be")
        || has_phrase(words, "has to be");
    if reject && alert {
        draft
            .warnings
            .push("both reject and alert words found; the rule rejects".to_owned());
        draft.confidence -= 0.1;
    }
    if reject {
        ActionKind::Reject
    } else if alert {
        ActionKind::Alert
    } else if adjust || draft.adjust.is_some() {
        ActionKind::Adjust
    } else {
        draft
            .warnings
            .push("no action word (alert, reject, keep); the rule alerts".to_owned());
        draft.confidence -= 0.25;
        ActionKind::Alert
    }
}

/// Drafts a rule from `text`. The rule is named `name`, or after the interpretation when `None`
/// (cut to 100 characters). Recognised: mug counts ("more than two mugs", "no mug", "three or
/// more cups"), frame positions ("near the left edge", "in the top right corner", "not in the
/// centre"), distances ("within 50 mm of the centre", "more than 30 mm to the left",
/// "horizontally more than 20 px"), detection confidence ("confidence below 0.5"), priority
/// words ("urgent", "low priority") and the actions alert, reject and adjust ("keep …").
/// A "keep/within" sentence becomes an adjust rule that fires when the mug is outside the
/// distance, with the target in its parameters.
pub fn parse_rule(text: &str, name: Option<&str>) -> Result<ParsedRule, LanguageError> {
    if text.chars().count() > MAX_RULE_TEXT_CHARS {
        return Err(LanguageError::TooLong);
    }
    let words = normalise(text);
    if words.is_empty() {
        return Err(LanguageError::Empty);
    }
    let mut draft = Draft {
        conditions: Vec::new(),
        phrases: Vec::new(),
        warnings: Vec::new(),
        confidence: 0.95,
        used_numbers: 0,
        adjust: None,
    };
    parse_distances(&words, &mut draft);
    if draft.adjust.is_none() && draft.conditions.is_empty() {
        parse_positions(&words, &mut draft);
    } else if words.iter().any(|w| w == "edge" || w == "corner") {
        draft
            .warnings
            .push("a position word was ignored because a distance was given".to_owned());
    }
    parse_counts(&words, &mut draft);
    parse_confidence(&words, &mut draft);
    if draft.conditions.is_empty() {
        return Err(LanguageError::NotUnderstood(
            text.chars().take(80).collect(),
        ));
    }
    let numbers = words.iter().filter(|w| w.parse::<f64>().is_ok()).count();
    if numbers > draft.used_numbers {
        draft.warnings.push(format!(
            "{} number(s) in the text were not used",
            numbers - draft.used_numbers
        ));
        draft.confidence -= 0.1;
    }
    let action = action_of(&words, &mut draft);
    let priority = if ["urgent", "critical", "important"]
        .iter()
        .any(|w| has(&words, w))
        || has_phrase(&words, "high priority")
    {
        500
    } else if has_phrase(&words, "low priority") {
        50
    } else {
        DEFAULT_PRIORITY
    };
    let when = draft.phrases.join(" and ");
    let (message, parameters, verb) = match action {
        ActionKind::Reject => (format!("Rejected: {when}."), None, "reject the placement"),
        ActionKind::Alert => (format!("Check the placement: {when}."), None, "alert"),
        ActionKind::Adjust => {
            let parameters = draft.adjust.take().unwrap_or_else(|| {
                let mut p = Map::new();
                p.insert("target".to_owned(), json!("center"));
                p
            });
            (
                format!("Move the mug: {when}."),
                Some(parameters),
                "suggest an adjustment",
            )
        }
    };
    let interpretation = format!("When {when}, {verb}.");
    let rule_name = name.map_or_else(
        || interpretation.chars().take(MAX_NAME_CHARS).collect(),
        str::to_owned,
    );
    Ok(ParsedRule {
        rule: RuleDefinition {
            name: rule_name,
            description: Some(text.to_owned()),
            conditions: draft.conditions,
            actions: vec![RuleAction {
                action,
                message: Some(message),
                parameters,
            }],
            priority,
            enabled: true,
            context: None,
        },
        interpretation,
        confidence: draft.confidence.clamp(0.05, 0.95),
        warnings: draft.warnings,
    })
}
