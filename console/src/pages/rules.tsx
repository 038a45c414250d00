// Rules: the list, a builder for conditions and actions (create and edit), a draft from a
// sentence (interpretation, confidence and warnings before saving), and evaluation against an
// analysis.

import { useState } from "preact/hooks";
import { type Principal, call, can } from "../api";
import { ErrorText, Section, round, useAction, useLoad } from "../ui";
import type { Analysis } from "./mugs";

type Value = string | number | boolean | (string | number | boolean)[];
interface Condition {
  field: string;
  operator: string;
  value: Value;
}
interface Action {
  action: string;
  message?: string | null;
}
interface Rule {
  id?: string;
  name: string;
  description?: string;
  priority?: number;
  enabled?: boolean;
  context?: string;
  conditions: Condition[];
  actions: Action[];
}
interface Draft {
  interpretation: string;
  confidence: number;
  warnings: string[];
  rule: Rule;
  saved: boolean;
}

const OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "abs<", "abs<=", "abs>", "abs>=", "in", "not_in", "contains"];
const FIELDS = [
  "position_key",
  "mug_count",
  "distance_px",
  "distance_mm",
  "offset_px.x",
  "offset_px.y",
  "offset_mm.x",
  "offset_mm.y",
  "relative.x",
  "relative.y",
  "confidence",
];

function valueText(value: Value): string {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function parseValue(text: string, operator: string): Value {
  const one = (t: string): string | number | boolean => {
    const trimmed = t.trim();
    if (trimmed === "true" || trimmed === "false") return trimmed === "true";
    const number = Number(trimmed);
    return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
  };
  if (operator === "in" || operator === "not_in") return text.split(",").map(one);
  return one(text);
}

function describeRule(rule: Rule): string {
  const when = rule.conditions.map((c) => `${c.field} ${c.operator} ${valueText(c.value)}`).join(" and ");
  const then = rule.actions.map((a) => a.action).join(", ");
  return `when ${when || "always"} → ${then}`;
}

function RuleEditor(props: { initial: Rule; onSaved: () => void; onCancel: () => void }) {
  const [rule, setRule] = useState<Rule>(props.initial);
  const [values, setValues] = useState(props.initial.conditions.map((c) => valueText(c.value)));
  const save = useAction(async () => {
    const body = {
      name: rule.name,
      description: rule.description || undefined,
      priority: rule.priority ?? 0,
      enabled: rule.enabled ?? true,
      context: rule.context || undefined,
      conditions: rule.conditions.map((c, i) => ({ ...c, value: parseValue(values[i] ?? "", c.operator) })),
      actions: rule.actions.map((a) => ({ action: a.action, message: a.message || undefined })),
    };
    if (rule.id) await call("PATCH", `/api/v1/rules/${rule.id}`, { json: body });
    else await call("POST", "/api/v1/rules", { json: body });
    props.onSaved();
  });
  const setCondition = (index: number, patch: Partial<Condition>) =>
    setRule({ ...rule, conditions: rule.conditions.map((c, i) => (i === index ? { ...c, ...patch } : c)) });
  const setAction = (index: number, patch: Partial<Action>) =>
    setRule({ ...rule, actions: rule.actions.map((a, i) => (i === index ? { ...a, ...patch } : a)) });
  return (
    <form
      class="editor"
      aria-label={rule.id ? "Edit rule" : "New rule"}
      onSubmit={(e) => {
        e.preventDefault();
        void save.run();
      }}
    >
      <div class="fields">
        <label>
          Name
          <input required maxLength={200} value={rule.name} onInput={(e) => setRule({ ...rule, name: e.currentTarget.value })} />
        </label>
        <label>
          Priority
          <input
            type="number"
            value={rule.priority ?? 0}
            onInput={(e) => setRule({ ...rule, priority: Number(e.currentTarget.value) })}
          />
        </label>
        <label>
          Context (optional)
          <input value={rule.context ?? ""} onInput={(e) => setRule({ ...rule, context: e.currentTarget.value })} />
        </label>
        <label class="inline">
          <input
            type="checkbox"
            checked={rule.enabled ?? true}
            onChange={(e) => setRule({ ...rule, enabled: e.currentTarget.checked })}
          />
          Enabled
        </label>
      </div>
      <fieldset>
        <legend>Conditions (all must hold)</legend>
        <datalist id="rule-fields">
          {FIELDS.map((f) => (
            <option key={f} value={f} />
          ))}
        </datalist>
        {rule.conditions.map((condition, i) => (
          <div class="row condition" key={i}>
            <label>
              Field
              <input
                list="rule-fields"
                required
                value={condition.field}
                onInput={(e) => setCondition(i, { field: e.currentTarget.value })}
              />
            </label>
            <label>
              Operator
              <select value={condition.operator} onChange={(e) => setCondition(i, { operator: e.currentTarget.value })}>
                {OPERATORS.map((op) => (
                  <option key={op} value={op}>
                    {op}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Value
              <input
                required
                value={values[i] ?? ""}
                onInput={(e) => setValues(values.map((v, j) => (j === i ? e.currentTarget.value : v)))}
              />
            </label>
            <button
              type="button"
              class="secondary"
              aria-label={`Remove condition ${i + 1}`}
              onClick={() => {
                setRule({ ...rule, conditions: rule.conditions.filter((_, j) => j !== i) });
                setValues(values.filter((_, j) => j !== i));
              }}
            >
              Remove
            </button>
          </div>
        ))}
        <button
          type="button"
          class="secondary"
          onClick={() => {
            setRule({ ...rule, conditions: [...rule.conditions, { field: "position_key", operator: "==", value: "" }] });
            setValues([...values, ""]);
          }}
        >
          Add condition
        </button>
      </fieldset>
      <fieldset>
        <legend>Actions</legend>
        {rule.actions.map((action, i) => (
          <div class="row" key={i}>
            <label>
              Action
              <select value={action.action} onChange={(e) => setAction(i, { action: e.currentTarget.value })}>
                <option value="alert">alert</option>
                <option value="reject">reject</option>
                <option value="adjust">adjust</option>
              </select>
            </label>
            <label>
              Message
              <input value={action.message ?? ""} onInput={(e) => setAction(i, { message: e.currentTarget.value })} />
            </label>
            <button
              type="button"
              class="secondary"
              aria-label={`Remove action ${i + 1}`}
              onClick={() => setRule({ ...rule, actions: rule.actions.filter((_, j) => j !== i) })}
            >
              Remove
            </button>
          </div>
        ))}
        <button
          type="button"
          class="secondary"
          onClick={() => setRule({ ...rule, actions: [...rule.actions, { action: "alert", message: "" }] })}
        >
          Add action
        </button>
      </fieldset>
      <ErrorText error={save.error} />
      <div class="row">
        <button type="submit" disabled={save.busy}>
          Save rule
        </button>
        <button type="button" class="secondary" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function DraftFromSentence({ onSaved }: { onSaved: () => void }) {
  const [text, setText] = useState("");
  const [draft, setDraft] = useState<Draft | null>(null);
  const ask = useAction(async (save: boolean) => {
    const answer = await call<Draft>("POST", "/api/v1/rules/natural-language", { json: { text, save } });
    setDraft(answer);
    if (save) onSaved();
  });
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void ask.run(false);
      }}
    >
      <label>
        Describe a rule in a sentence
        <input
          name="sentence"
          placeholder="alert if the mug is near the left edge"
          required
          maxLength={1000}
          value={text}
          onInput={(e) => {
            setText(e.currentTarget.value);
            setDraft(null);
          }}
        />
      </label>
      <div class="row">
        <button type="submit" disabled={ask.busy || !text}>
          Draft
        </button>
        <button type="button" disabled={ask.busy || !draft || draft.saved} onClick={() => void ask.run(true)}>
          Save draft
        </button>
      </div>
      <ErrorText error={ask.error} />
      {draft && (
        <div class="draft" aria-live="polite">
          <p>
            <strong>Interpretation:</strong> {draft.interpretation}
          </p>
          <p>
            <strong>Confidence:</strong> {round(draft.confidence * 100, 0)} %
          </p>
          {draft.warnings.length > 0 && (
            <ul class="warnings">
              {draft.warnings.map((w, i) => (
                <li key={i}>{w}</li>
              ))}
            </ul>
          )}
          <p>
            <strong>Rule:</strong> {draft.rule.name}: {describeRule(draft.rule)}
          </p>
          {draft.saved && <p class="notice">Saved.</p>}
        </div>
      )}
    </form>
  );
}

function Evaluate() {
  const analyses = useLoad(
    () => call<{ analyses: Analysis[] }>("GET", "/api/v1/analysis", { query: { limit: 20 } }),
    [],
  );
  const [chosen, setChosen] = useState("");
  const [outcome, setOutcome] = useState<{ verdict: string; messages: string[]; rules_evaluated: number } | null>(null);
  const evaluate = useAction(async () => {
    const analysis = analyses.data?.analyses.find((a) => a.id === chosen);
    if (!analysis) throw new Error("Choose a completed analysis.");
    setOutcome(await call("POST", "/api/v1/rules/evaluate", { json: { context: analysis } }));
  });
  const completed = (analyses.data?.analyses ?? []).filter((a) => a.status === "completed");
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void evaluate.run();
      }}
    >
      <label>
        Analysis
        <select value={chosen} onChange={(e) => setChosen(e.currentTarget.value)} required>
          <option value="">Choose…</option>
          {completed.map((a) => (
            <option key={a.id} value={a.id}>
              {new Date(a.created_at_ms ?? 0).toLocaleString()} — {a.mug_count} mugs
            </option>
          ))}
        </select>
      </label>
      <button type="submit" disabled={evaluate.busy || !chosen}>
        Evaluate my rules
      </button>
      <ErrorText error={analyses.error ?? evaluate.error} />
      {outcome && (
        <div aria-live="polite">
          <p>
            Verdict <span class={`verdict verdict-${outcome.verdict}`}>{outcome.verdict}</span> from{" "}
            {outcome.rules_evaluated} rules.
          </p>
          <ul>
            {outcome.messages.map((m, i) => (
              <li key={i}>{m}</li>
            ))}
          </ul>
        </div>
      )}
    </form>
  );
}

const EMPTY_RULE: Rule = {
  name: "",
  priority: 0,
  enabled: true,
  conditions: [{ field: "position_key", operator: "==", value: "left_edge" }],
  actions: [{ action: "alert", message: "" }],
};

export function RulesPage({ principal }: { principal: Principal }) {
  const rules = useLoad(() => call<{ rules: Rule[] }>("GET", "/api/v1/rules", { query: { limit: 100 } }), []);
  const [editing, setEditing] = useState<Rule | null>(null);
  const canWrite = can(principal, "rules:write");
  const canDelete = can(principal, "rules:delete");
  const remove = useAction(async (id: string) => {
    if (!window.confirm("Delete this rule?")) return;
    await call("DELETE", `/api/v1/rules/${id}`);
    rules.reload();
  });
  return (
    <div class="grid">
      <Section title="Your rules" id="rules-title">
        <ErrorText error={rules.error ?? remove.error} />
        {rules.data && rules.data.rules.length === 0 && <p>No rules yet.</p>}
        <ul class="rules">
          {(rules.data?.rules ?? []).map((rule) => (
            <li key={rule.id} class="rule">
              <div>
                <strong>{rule.name}</strong> {rule.enabled === false && <em>(disabled)</em>}
                <br />
                <small>
                  priority {rule.priority ?? 0} · {describeRule(rule)}
                </small>
              </div>
              <div class="row">
                {canWrite && (
                  <button type="button" class="secondary" onClick={() => setEditing(rule)}>
                    Edit
                  </button>
                )}
                {canDelete && rule.id && (
                  <button type="button" class="secondary" onClick={() => void remove.run(rule.id!)}>
                    Delete
                  </button>
                )}
              </div>
            </li>
          ))}
        </ul>
        {canWrite && !editing && (
          <button type="button" onClick={() => setEditing(EMPTY_RULE)}>
            New rule
          </button>
        )}
        {editing && (
          <RuleEditor
            key={editing.id ?? "new"}
            initial={editing}
            onCancel={() => setEditing(null)}
            onSaved={() => {
              setEditing(null);
              rules.reload();
            }}
          />
        )}
      </Section>
      {canWrite && (
        <Section title="Draft a rule from a sentence" id="draft-title">
          <DraftFromSentence onSaved={rules.reload} />
        </Section>
      )}
      {can(principal, "rules:execute") && can(principal, "analysis:read") && (
        <Section title="Evaluate against an analysis" id="evaluate-title">
          <Evaluate />
        </Section>
      )}
    </div>
  );
}
