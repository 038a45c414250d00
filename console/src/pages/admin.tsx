// Admin: the audit log with filters (type, principal, address, time range) and paging, and the
// users list.

import { useState } from "preact/hooks";
import { type Principal, call, can } from "../api";
import { ErrorText, Pager, Section, formatTime, useLoad } from "../ui";

interface AuditEvent {
  id: string;
  position: number;
  event_type: string;
  severity: string;
  occurred_at_ms: number;
  principal?: string | null;
  ip?: string | null;
  method?: string | null;
  path?: string | null;
  status?: number | null;
  code?: string | null;
  detail?: string | null;
}
interface User {
  id: string;
  username: string;
  roles: string[];
  mfa_enabled: boolean;
  created_at_ms: number;
}

const EVENT_TYPES = [
  "login_success",
  "login_failure",
  "token_expired",
  "token_invalid",
  "permission_denied",
  "rate_limited",
  "ip_blocked",
  "suspicious_activity",
  "data_access",
  "admin_action",
  "configuration_change",
];
const PAGE = 25;

function toMs(local: string): number | undefined {
  if (!local) return undefined;
  const ms = new Date(local).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

function Audit() {
  const [filters, setFilters] = useState({ type: "", principal: "", ip: "", from: "", to: "" });
  const [applied, setApplied] = useState(filters);
  const [offset, setOffset] = useState(0);
  const events = useLoad(
    () =>
      call<{ events: AuditEvent[]; total?: number }>("GET", "/api/v1/admin/audit", {
        query: {
          type: applied.type,
          principal: applied.principal,
          ip: applied.ip,
          from: toMs(applied.from),
          to: toMs(applied.to),
          limit: PAGE,
          offset,
        },
      }),
    [applied, offset],
  );
  const field = (name: keyof typeof filters) => (e: Event) =>
    setFilters({ ...filters, [name]: (e.currentTarget as HTMLInputElement).value });
  return (
    <>
      <form
        class="fields"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setApplied(filters);
        }}
      >
        <label>
          Type
          <select value={filters.type} onChange={field("type")}>
            <option value="">any</option>
            {EVENT_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Principal
          <input value={filters.principal} onInput={field("principal")} />
        </label>
        <label>
          Address
          <input value={filters.ip} onInput={field("ip")} />
        </label>
        <label>
          From
          <input type="datetime-local" value={filters.from} onInput={field("from")} />
        </label>
        <label>
          To
          <input type="datetime-local" value={filters.to} onInput={field("to")} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorText error={events.error} />
      <div class="table-wrap">
        <table class="audit">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">When</th>
              <th scope="col">Type</th>
              <th scope="col">Principal</th>
              <th scope="col">Address</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {(events.data?.events ?? []).map((e) => (
              <tr key={e.id} data-event-type={e.event_type}>
                <td>{e.position}</td>
                <td>{formatTime(e.occurred_at_ms)}</td>
                <td>
                  {e.event_type} <small>({e.severity})</small>
                </td>
                <td>{e.principal ?? "—"}</td>
                <td>{e.ip ?? "—"}</td>
                <td>{[e.method && e.path ? `${e.method} ${e.path}` : e.path, e.status, e.code, e.detail].filter(Boolean).join(" · ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        offset={offset}
        size={PAGE}
        shown={events.data?.events.length ?? 0}
        onOffset={setOffset}
        label={`Events ${offset + 1}–${offset + (events.data?.events.length ?? 0)}${
          events.data?.total !== undefined ? ` of ${events.data.total}` : ""
        }`}
      />
    </>
  );
}

function Users() {
  const [offset, setOffset] = useState(0);
  const users = useLoad(() => call<{ users: User[] }>("GET", "/api/v1/admin/users", { query: { limit: PAGE, offset } }), [offset]);
  return (
    <>
      <ErrorText error={users.error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Roles</th>
              <th scope="col">MFA</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {(users.data?.users ?? []).map((u) => (
              <tr key={u.id}>
                <td title={u.id}>{u.username}</td>
                <td>{u.roles.join(", ")}</td>
                <td>{u.mfa_enabled ? "on" : "off"}</td>
                <td>{formatTime(u.created_at_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager offset={offset} size={PAGE} shown={users.data?.users.length ?? 0} onOffset={setOffset} />
    </>
  );
}

export function AdminPage({ principal }: { principal: Principal }) {
  return (
    <div class="grid">
      {can(principal, "admin:audit") && (
        <Section title="Audit log" id="audit-title">
          <Audit />
        </Section>
      )}
      {can(principal, "admin:users") && (
        <Section title="Users" id="users-title">
          <Users />
        </Section>
      )}
    </div>
  );
}
