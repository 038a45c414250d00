// Account: MFA setup with a QR code drawn here (no outside service sees the secret), password
// change, API keys (shown once at creation, listed, revoked), export of my data and deletion of
// my account.

import { useState } from "preact/hooks";
import { encode } from "uqr";
import { type Principal, call, forget } from "../api";
import { ErrorText, Section, formatTime, useAction, useLoad } from "../ui";

interface ApiKey {
  id: string;
  name: string;
  prefix?: string;
  created_at_ms: number;
  expires_at_ms?: number | null;
  revoked_at_ms?: number | null;
  last_used_at_ms?: number | null;
  key?: string;
}

/** A QR code as SVG squares, one `rect` per dark module. */
export function QrCode({ text, label }: { text: string; label: string }) {
  const { data, size } = encode(text, { ecc: "M", border: 2 });
  const path = data
    .flatMap((row, y) => row.map((dark, x) => (dark ? `M${x} ${y}h1v1h-1z` : "")))
    .join("");
  return (
    <svg class="qr" viewBox={`0 0 ${size} ${size}`} role="img" aria-label={label} shape-rendering="crispEdges">
      <rect width={size} height={size} fill="#fff" />
      <path d={path} fill="#000" />
    </svg>
  );
}

function Mfa({ principal }: { principal: Principal }) {
  const [setup, setSetup] = useState<{ otpauth_uri: string; secret: string } | null>(null);
  const [code, setCode] = useState("");
  const [done, setDone] = useState(false);
  const start = useAction(async () => setSetup(await call("POST", "/auth/mfa/setup", { json: {} })));
  const verify = useAction(async () => {
    await call("POST", "/auth/mfa/verify", { json: { code } });
    setDone(true);
    setSetup(null);
  });
  if (done) return <p class="notice">Two-factor sign-in is on: your next sign-in asks for a code.</p>;
  return (
    <>
      <p>
        {principal.mfa
          ? "This session passed a second factor."
          : "Add a one-time code from an authenticator app to your sign-in."}
      </p>
      {!setup && (
        <button type="button" onClick={() => void start.run()} disabled={start.busy}>
          Set up two-factor sign-in
        </button>
      )}
      <ErrorText error={start.error} />
      {setup && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void verify.run();
          }}
        >
          <p>Scan this code with your authenticator app, then enter the code it shows.</p>
          <QrCode text={setup.otpauth_uri} label="QR code of the authenticator secret" />
          <p>
            Or type the secret: <code class="secret">{setup.secret}</code>
          </p>
          <label>
            Code from the app
            <input
              inputMode="numeric"
              pattern="[0-9]{6}"
              autoComplete="one-time-code"
              required
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          </label>
          <ErrorText error={verify.error} />
          <button type="submit" disabled={verify.busy}>
            Turn on
          </button>
        </form>
      )}
    </>
  );
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [done, setDone] = useState(false);
  const change = useAction(async () => {
    if (next !== repeat) throw new Error("The new passwords differ.");
    await call("POST", "/auth/password", { json: { current_password: current, new_password: next } });
    setDone(true);
    setCurrent("");
    setNext("");
    setRepeat("");
  });
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        setDone(false);
        void change.run();
      }}
    >
      <label>
        Current password
        <input type="password" autoComplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
      </label>
      <label>
        New password (12+ characters with upper and lower case, a digit and a symbol)
        <input type="password" autoComplete="new-password" required minLength={12} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
      </label>
      <label>
        New password again
        <input type="password" autoComplete="new-password" required value={repeat} onInput={(e) => setRepeat(e.currentTarget.value)} />
      </label>
      <ErrorText error={change.error} />
      {done && <p class="notice">Your password is changed.</p>}
      <button type="submit" disabled={change.busy}>
        Change password
      </button>
    </form>
  );
}

function ApiKeys() {
  const keys = useLoad(() => call<{ keys: ApiKey[] }>("GET", "/auth/api-keys"), []);
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [copied, setCopied] = useState(false);
  const create = useAction(async () => {
    const json: Record<string, unknown> = { name };
    if (days) json.expires_in_days = Number(days);
    setCreated(await call<ApiKey>("POST", "/auth/api-keys", { json }));
    setCopied(false);
    setName("");
    keys.reload();
  });
  const revoke = useAction(async (id: string) => {
    if (!window.confirm("Revoke this key? Programs using it stop working within a minute.")) return;
    await call("DELETE", `/auth/api-keys/${id}`);
    keys.reload();
  });
  return (
    <>
      <form
        class="fields"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <label>
          Key name
          <input required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Expires in days (optional)
          <input type="number" min="1" max="3650" value={days} onInput={(e) => setDays(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={create.busy}>
          Create key
        </button>
      </form>
      <ErrorText error={create.error ?? revoke.error ?? keys.error} />
      {created?.key && (
        <div class="notice" role="status">
          <p>This is the only time the key is shown. Copy it now:</p>
          <p>
            <code class="secret">{created.key}</code>{" "}
            <button
              type="button"
              class="secondary"
              onClick={() =>
                void navigator.clipboard.writeText(created.key!).then(
                  () => setCopied(true),
                  () => setCopied(false),
                )
              }
            >
              {copied ? "Copied" : "Copy"}
            </button>
          </p>
        </div>
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {(keys.data?.keys ?? []).map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix ?? ""}</code>
                </td>
                <td>{formatTime(k.created_at_ms)}</td>
                <td>{formatTime(k.expires_at_ms)}</td>
                <td>{formatTime(k.last_used_at_ms)}</td>
                <td>
                  {k.revoked_at_ms ? (
                    "revoked"
                  ) : (
                    <button type="button" class="secondary" onClick={() => void revoke.run(k.id)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function MyData() {
  const [confirmText, setConfirmText] = useState("");
  const exportData = useAction(async () => {
    const data = await call<unknown>("GET", "/api/v1/me/export");
    const link = document.createElement("a");
    link.href = `data:application/json;charset=utf-8,${encodeURIComponent(JSON.stringify(data, null, 2))}`;
    link.download = "h200-my-data.json";
    document.body.append(link);
    link.click();
    link.remove();
  });
  const remove = useAction(async () => {
    await call("DELETE", "/api/v1/me");
    forget("Your account and everything it made are deleted.");
  });
  return (
    <>
      <p>Download everything the system holds about you as JSON.</p>
      <button type="button" onClick={() => void exportData.run()} disabled={exportData.busy}>
        Export my data
      </button>
      <ErrorText error={exportData.error} />
      <form
        class="danger"
        onSubmit={(e) => {
          e.preventDefault();
          void remove.run();
        }}
      >
        <h3>Delete my account</h3>
        <p>This deletes your account, its keys, sessions, rules and analyses at once. It cannot be undone.</p>
        <label>
          Type DELETE to confirm
          <input value={confirmText} onInput={(e) => setConfirmText(e.currentTarget.value)} />
        </label>
        <ErrorText error={remove.error} />
        <button type="submit" class="destructive" disabled={remove.busy || confirmText !== "DELETE"}>
          Delete my account
        </button>
      </form>
    </>
  );
}

export function AccountPage({ principal }: { principal: Principal }) {
  return (
    <div class="grid">
      <Section title="Two-factor sign-in" id="mfa-title">
        <Mfa principal={principal} />
      </Section>
      <Section title="Password" id="password-title">
        <Password />
      </Section>
      <Section title="API keys" id="keys-title">
        <ApiKeys />
      </Section>
      <Section title="My data" id="data-title">
        <MyData />
      </Section>
    </div>
  );
}
