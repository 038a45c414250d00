// The console's one way to the API: same origin, the access token in memory only, the refresh
// token in the edge's HttpOnly cookie (never visible here), every refusal turned into words.

/** The header that opts a request into the cookie session and guards it against CSRF. */
const SESSION_HEADER = "X-H200-Session";

/** An RFC 9457 problem as the edge and the backend answer it. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  request_id?: string;
  errors?: { field: string; code: string; message: string }[];
}

/** A refused request: its status, stable code and a sentence for the user. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly problem: Problem,
    readonly retryAfterSecs: number | null,
  ) {
    super(describe(status, code, problem, retryAfterSecs));
  }
}

function minutes(secs: number): string {
  if (secs < 90) return `${secs} s`;
  return `${Math.ceil(secs / 60)} min`;
}

/** The words a user reads for a refusal. */
function describe(status: number, code: string, problem: Problem, retry: number | null): string {
  const detail = problem.detail ? ` (${problem.detail})` : "";
  switch (code) {
    case "INVALID_CREDENTIALS":
      return "Wrong username or password.";
    case "IP_BLOCKED":
      return retry
        ? `Too many failed attempts from your address: it is blocked for another ${minutes(retry)}.`
        : "Requests from your address are blocked for now.";
    case "RATE_LIMIT_EXCEEDED":
      return retry
        ? `Too many requests: try again in ${minutes(retry)}.`
        : "Too many requests: try again shortly.";
    case "MFA_REQUIRED":
      return "Enter the 6-digit code from your authenticator app.";
    case "INVALID_MFA_CODE":
      return "That one-time code is not valid (or was used already).";
    case "INSUFFICIENT_PERMISSIONS":
      return "Your account is not allowed to do that.";
    case "EXPIRED_TOKEN":
    case "REVOKED_TOKEN":
    case "MISSING_CREDENTIALS":
      return "Your session has ended: sign in again.";
    case "WEAK_PASSWORD":
    case "PASSWORD_REUSED":
    case "VALIDATION_FAILED":
    case "INVALID_IMAGE_FORMAT":
    case "IMAGE_TOO_LARGE":
    case "DIMENSION_MISMATCH":
    case "INVALID_INPUT":
    case "TOO_MANY_POINTS":
    case "EMPTY_POINTS":
      return `${problem.title ?? "The request was refused"}${fieldErrors(problem) || detail}`;
    default:
      if (!code) return `The request failed with HTTP ${status}.`;
      return `${problem.title ?? code}${detail}`;
  }
}

function fieldErrors(problem: Problem): string {
  if (!problem.errors?.length) return "";
  return `: ${problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`;
}

/** What the console knows of the edge from its last answers: the status line shows it. */
export interface EdgeStatus {
  health: "unknown" | "ok" | "degraded" | "down";
  rateLimit: number | null;
  rateRemaining: number | null;
  rateReset: number | null;
}

type Listener = () => void;

/** A value with listeners: the console's whole state model. */
export class Store<T> {
  private listeners = new Set<Listener>();
  constructor(private current: T) {}
  get value(): T {
    return this.current;
  }
  set(next: T) {
    this.current = next;
    this.listeners.forEach((l) => l());
  }
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export const edgeStatus = new Store<EdgeStatus>({
  health: "unknown",
  rateLimit: null,
  rateRemaining: null,
  rateReset: null,
});

/** Who is signed in, from the access token's claims and the token answer's scope. */
export interface Principal {
  subject: string;
  username: string;
  roles: string[];
  permissions: Set<string>;
  mfa: boolean;
}

export type SessionState =
  | { kind: "loading" }
  | { kind: "signed-out"; notice?: string }
  | { kind: "signed-in"; principal: Principal };

export const session = new Store<SessionState>({ kind: "loading" });

export function can(principal: Principal, permission: string): boolean {
  return principal.permissions.has(permission);
}

let accessToken: string | null = null;
let refreshTimer: number | undefined;

interface TokenAnswer {
  access_token: string;
  expires_in: number;
  scope?: string;
  token_type: string;
}

function claimsOf(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  try {
    const text = new TextDecoder().decode(
      Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)),
    );
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** The name typed at sign-in, in memory only (after a reload the roles label the account). */
let knownUsername: string | null = null;

function adopt(answer: TokenAnswer, username?: string) {
  accessToken = answer.access_token;
  const claims = claimsOf(answer.access_token);
  const fromClaims = Array.isArray(claims.permissions) ? (claims.permissions as string[]) : [];
  const fromScope = (answer.scope ?? "").split(" ").filter(Boolean);
  if (username) knownUsername = username;
  const principal: Principal = {
    subject: String(claims.sub ?? ""),
    username: knownUsername ?? "",
    roles: Array.isArray(claims.roles) ? (claims.roles as string[]) : [],
    permissions: new Set([...fromClaims, ...fromScope]),
    mfa: claims.mfa === true,
  };
  window.clearTimeout(refreshTimer);
  // Renew a minute before the access token runs out; the refresh token's own lifetime (the
  // cookie's) ends an idle session.
  const renewIn = Math.max(10, answer.expires_in - 60) * 1000;
  refreshTimer = window.setTimeout(() => void refresh(), renewIn);
  session.set({ kind: "signed-in", principal });
}

function signedOut(notice?: string) {
  accessToken = null;
  window.clearTimeout(refreshTimer);
  session.set({ kind: "signed-out", notice });
}

function noteHeaders(response: Response) {
  const number = (name: string) => {
    const value = response.headers.get(name);
    return value === null ? null : Number(value);
  };
  const limit = number("x-ratelimit-limit");
  if (limit !== null) {
    edgeStatus.set({
      ...edgeStatus.value,
      rateLimit: limit,
      rateRemaining: number("x-ratelimit-remaining"),
      rateReset: number("x-ratelimit-reset"),
    });
  }
}

async function problemOf(response: Response): Promise<ApiError> {
  let problem: Problem = {};
  try {
    problem = (await response.json()) as Problem;
  } catch {
    problem = {};
  }
  const retry = response.headers.get("retry-after");
  return new ApiError(
    response.status,
    problem.code ?? "",
    problem,
    retry === null ? null : Number(retry),
  );
}

export interface CallOptions {
  json?: unknown;
  form?: FormData;
  query?: Record<string, string | number | boolean | undefined>;
  /** Send the access token (default); false for the public routes. */
  auth?: boolean;
}

async function send(method: string, path: string, options: CallOptions): Promise<Response> {
  const headers: Record<string, string> = { [SESSION_HEADER]: "cookie", accept: "application/json" };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  if (options.auth !== false && accessToken) headers.authorization = `Bearer ${accessToken}`;
  let url = path;
  if (options.query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query)) {
      if (value !== undefined && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  noteHeaders(response);
  return response;
}

/** Calls the API; a refused request throws an [`ApiError`]. An expired access token is
 * renewed once through the cookie and the request repeated. */
export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  let response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false && accessToken) {
    if (await refresh()) response = await send(method, path, options);
  }
  if (!response.ok) {
    const error = await problemOf(response);
    if (response.status === 401 && options.auth !== false) signedOut(error.message);
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("json")) return (await response.json()) as T;
  return (await response.text()) as unknown as T;
}

/** Signs in; the edge keeps the refresh token in its cookie. */
export async function signIn(username: string, password: string, totp?: string) {
  const json: Record<string, string> = { username, password };
  if (totp) json.totp_code = totp;
  const answer = await call<TokenAnswer>("POST", "/auth/login", { json, auth: false });
  adopt(answer, username);
}

let refreshing: Promise<boolean> | null = null;

/** Whether the edge set a session cookie that may still hold: its marker cookie (no secret)
 * lives exactly as long as the HttpOnly refresh cookie, which scripts cannot see. */
function mayHaveSession(): boolean {
  return document.cookie.split(";").some((c) => c.trim().startsWith("h200_session=1"));
}

/** At page load: resumes the session from the cookie when there is one, else signs out. */
export async function resume(): Promise<void> {
  if (mayHaveSession()) await refresh();
  else signedOut();
}

/** Renews the access token from the cookie; false (and signed out) when the session is over.
 * Tabs take turns through a Web Lock, so two tabs never spend the same refresh token. */
export function refresh(): Promise<boolean> {
  if (refreshing) return refreshing;
  const attempt = async () => {
    const response = await send("POST", "/auth/refresh", { auth: false });
    if (response.ok) {
      adopt((await response.json()) as TokenAnswer);
      return true;
    }
    const error = await problemOf(response);
    signedOut(response.status === 401 && error.code === "MISSING_CREDENTIALS" ? undefined : error.message);
    return false;
  };
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  const pending: Promise<boolean> = locks
    ? locks.request("h200-refresh", attempt).then((ok) => ok)
    : attempt();
  const settled = pending
    .catch(() => {
      signedOut("The edge could not be reached.");
      return false;
    })
    .finally(() => {
      refreshing = null;
    });
  refreshing = settled;
  return settled;
}

/** Signs out: the backend revokes the token and the cookie's refresh family; the cookie goes. */
export async function signOut() {
  try {
    await send("POST", "/auth/logout", { auth: true });
  } finally {
    knownUsername = null;
    signedOut("You are signed out.");
  }
}

/** Forgets the session without asking the edge (the account is gone). */
export function forget(notice: string) {
  knownUsername = null;
  signedOut(notice);
}

/** Polls `/health` for the status line. */
export async function checkHealth() {
  try {
    const response = await fetch("/health", { headers: { accept: "application/json" } });
    noteHeaders(response);
    const body = (await response.json()) as { status?: string };
    const health = response.ok && body.status === "ok" ? "ok" : response.ok ? "degraded" : "down";
    edgeStatus.set({ ...edgeStatus.value, health });
  } catch {
    edgeStatus.set({ ...edgeStatus.value, health: "down" });
  }
}
