// The console's shell: sign-in, the navigation the principal's permissions allow, the page of
// the location's hash, and the status line.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import {
  ApiError,
  type Principal,
  can,
  checkHealth,
  edgeStatus,
  resume,
  session,
  signIn,
  signOut,
} from "./api";
import { ErrorText, useStore } from "./ui";
import { AccountPage } from "./pages/account";
import { AdminPage } from "./pages/admin";
import { MugsPage } from "./pages/mugs";
import { NcsPage } from "./pages/ncs";
import { RulesPage } from "./pages/rules";
import { ServersPage } from "./pages/servers";

interface PageDef {
  path: string;
  label: string;
  allowed: (p: Principal) => boolean;
  view: (props: { principal: Principal }) => preact.JSX.Element;
}

const PAGES: PageDef[] = [
  { path: "mugs", label: "Mug Positioning", allowed: (p) => can(p, "analysis:read"), view: MugsPage },
  { path: "rules", label: "Rules", allowed: (p) => can(p, "rules:read"), view: RulesPage },
  { path: "ncs", label: "NCS", allowed: (p) => can(p, "clusters:read"), view: NcsPage },
  { path: "servers", label: "Servers", allowed: (p) => can(p, "servers:read"), view: ServersPage },
  { path: "account", label: "Account", allowed: () => true, view: AccountPage },
  {
    path: "admin",
    label: "Admin",
    allowed: (p) => can(p, "admin:audit") || can(p, "admin:users"),
    view: AdminPage,
  },
];

function useHash(): string {
  const read = () => location.hash.replace(/^#\/?/, "");
  const [hash, setHash] = useState(read());
  useEffect(() => {
    const onChange = () => setHash(read());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

function SignIn({ notice }: { notice?: string }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState("");
  const [needsTotp, setNeedsTotp] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(username, password, needsTotp ? totp : undefined);
    } catch (e) {
      if (e instanceof ApiError && e.code === "MFA_REQUIRED") setNeedsTotp(true);
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to H200</h1>
        {notice && <p class="notice">{notice}</p>}
        <label>
          Username or email
          <input
            name="username"
            autoComplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {needsTotp && (
          <label>
            One-time code
            <input
              name="totp"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              required
              value={totp}
              onInput={(e) => setTotp(e.currentTarget.value)}
            />
          </label>
        )}
        <ErrorText error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function StatusLine() {
  const status = useStore(edgeStatus);
  useEffect(() => {
    void checkHealth();
    const timer = window.setInterval(() => void checkHealth(), 30_000);
    return () => window.clearInterval(timer);
  }, []);
  const budget =
    status.rateRemaining !== null && status.rateLimit !== null
      ? `${status.rateRemaining} of ${status.rateLimit} requests left` +
        (status.rateReset !== null ? ` (resets in ${status.rateReset} s)` : "")
      : "no rate-limited request yet";
  return (
    <footer class="status" aria-live="polite">
      <span class={`health health-${status.health}`} data-health={status.health}>
        Edge: {status.health}
      </span>
      <span class="budget">Rate limit: {budget}</span>
    </footer>
  );
}

function Shell({ principal }: { principal: Principal }) {
  const hash = useHash();
  const pages = PAGES.filter((page) => page.allowed(principal));
  const current = pages.find((page) => page.path === hash) ?? pages[0];
  useEffect(() => {
    document.title = `${current.label} · H200 console`;
  }, [current]);
  const Page = current.view;
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">
          H200
        </a>
        <nav aria-label="Pages">
          <ul>
            {pages.map((page) => (
              <li key={page.path}>
                <a href={`#/${page.path}`} aria-current={page === current ? "page" : undefined}>
                  {page.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span title={principal.subject}>
            {principal.username || "Signed in"} ({principal.roles.join(", ") || "no role"})
          </span>
          <button type="button" class="secondary" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="page" tabIndex={-1}>
        <h1>{current.label}</h1>
        <Page principal={principal} />
      </main>
    </div>
  );
}

function App() {
  const state = useStore(session);
  useEffect(() => {
    void resume();
  }, []);
  return (
    <>
      {state.kind === "loading" && (
        <main class="signin">
          <p>Loading…</p>
        </main>
      )}
      {state.kind === "signed-out" && <SignIn notice={state.notice} />}
      {state.kind === "signed-in" && <Shell principal={state.principal} />}
      <StatusLine />
    </>
  );
}

render(<App />, document.getElementById("app")!);
