// The web console in a real browser: Debian's Chromium, headless, driven by playwright-core.
// `tests/tests/console.rs` starts a real H200 system and runs this script against its edge:
//
//   node tests/browser/console.mjs
//
// with H200_CONSOLE_URL (the edge), H200_CONSOLE_FLOW (`full` or `upload`), H200_CONSOLE_USERS
// (JSON: role → {username, password}), H200_CONSOLE_PHOTO (the example photo),
// H200_CONSOLE_SHOTS (where screenshots go) and NODE_PATH (where playwright-core is).
// Any CSP violation, console error or uncaught page error fails the run, as does a failed check.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(join(process.env.NODE_PATH ?? ".", "noop.js"));
const { chromium } = require("playwright-core");

const base = required("H200_CONSOLE_URL");
const flow = process.env.H200_CONSOLE_FLOW ?? "full";
const users = JSON.parse(required("H200_CONSOLE_USERS"));
const photo = required("H200_CONSOLE_PHOTO");
const shots = required("H200_CONSOLE_SHOTS");
const chromiumPath = process.env.H200_CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = 60_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const problems = [];
const notes = [];

// Chromium logs every non-2xx fetch as a console error. One 401 is part of the flows and shown
// to the user in words: the sign-in with a wrong password. That one, and only that one, is not
// counted.
function expectedRefusal(text, url) {
  const path = url ? new URL(url).pathname : "";
  return text.includes("the server responded with a status of 401") && path === "/auth/login";
}
const steps = [];

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    steps.push(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    steps.push(`FAIL ${name}: ${error.message}`);
    throw error;
  }
}

const WIDTHS = [
  { name: "phone", width: 375, height: 812 },
  { name: "desktop", width: 1280, height: 900 },
];

async function newSession(browser, label) {
  const context = await browser.newContext({ viewport: WIDTHS[1] });
  await context.exposeBinding("h200CspViolation", (_source, text) => {
    problems.push(`[${label}] CSP violation: ${text}`);
  });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      window.h200CspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const url = message.location().url ?? "";
    if (expectedRefusal(message.text(), url)) {
      notes.push(`[${label}] expected refusal logged by the browser: ${message.text()} ${url}`);
      return;
    }
    problems.push(`[${label}] console error: ${message.text()} ${url}`);
  });
  page.on("pageerror", (error) => problems.push(`[${label}] page error: ${error.message}`));
  return { context, page };
}

async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  for (const size of WIDTHS) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.waitForTimeout(100);
    await page.screenshot({ path: join(shots, `${flow}-${name}-${size.name}.png`), fullPage: true });
  }
  await page.setViewportSize(WIDTHS[1]);
}

async function signIn(page, role, password) {
  const user = users[role];
  await page.getByLabel("Username or email").fill(user.username);
  await page.getByLabel("Password", { exact: true }).fill(password ?? user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function open(page, path) {
  await page.goto(`${base}/#/${path}`);
}

async function signedInAs(page, role) {
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  const who = await page.locator(".who").innerText();
  check(who.includes(role), `the header names the role ${role}: ${who}`);
}

async function draftAndSaveRule(page) {
  await open(page, "rules");
  await page.getByLabel("Describe a rule in a sentence").fill("alert if the mug is near the left edge");
  await page.getByRole("button", { name: "Draft", exact: true }).click();
  await page.getByText("Interpretation:").waitFor();
  const draft = await page.locator(".draft").innerText();
  check(/Confidence:\s*\d+ %/.test(draft), `the draft shows its confidence: ${draft}`);
  await page.getByRole("button", { name: "Save draft" }).click();
  await page.locator(".draft .notice", { hasText: "Saved." }).waitFor();
  await page.locator(".rules .rule").first().waitFor();
  const rules = await page.locator(".rules").innerText();
  check(/left_edge|left edge/.test(rules), `the saved rule is listed: ${rules}`);
}

async function uploadPhoto(page) {
  await open(page, "mugs");
  await page.locator('input[type=file][name=image]').setInputFiles(photo);
  await page.getByLabel("Calibration (mm per pixel, optional)").fill("0.5");
  await page.getByRole("button", { name: "Upload and analyse" }).click();
  await page.locator(".result svg.picture").waitFor({ timeout: 90_000 });
  const boxes = await page.locator(".result svg.picture g.mug rect.box").count();
  check(boxes === 2, `two boxes are drawn over the photo (found ${boxes})`);
  check((await page.locator(".result svg.picture image").count()) === 1, "the photo is shown");
  const verdict = await page.locator(".result [data-verdict]").getAttribute("data-verdict");
  check(verdict === "alert", `the verdict is alert (got ${verdict})`);
  const violations = await page.locator(".result .violations").innerText();
  check(/alert/.test(violations) && /left edge/.test(violations), `the rule's alert is shown: ${violations}`);
  const labels = await page.locator(".result svg.picture").evaluate((svg) => svg.textContent);
  check(labels.includes("left_edge") && labels.includes("mm"), `position keys and offsets are drawn: ${labels}`);
}

async function fullFlow(browser) {
  // A viewer: the wrong password first, then no upload control.
  {
    const { context, page } = await newSession(browser, "viewer");
    await step("the console loads at / with its CSP", async () => {
      const response = await page.goto(`${base}/`);
      const csp = response.headers()["content-security-policy"] ?? "";
      check(csp.includes("script-src 'self'") && !csp.includes("unsafe"), `console CSP: ${csp}`);
      await page.getByRole("heading", { name: "Sign in to H200" }).waitFor();
      await screenshot(page, "sign-in");
    });
    await step("a wrong password says so", async () => {
      await signIn(page, "viewer", "Wrong-passw0rd!long");
      await page.getByRole("alert").filter({ hasText: "Wrong username or password." }).waitFor();
      await screenshot(page, "sign-in-wrong-password");
    });
    await step("a viewer does not get the upload control", async () => {
      await signIn(page, "viewer");
      await signedInAs(page, "viewer");
      await open(page, "mugs");
      await page.getByRole("heading", { name: "History" }).waitFor();
      check((await page.locator("input[type=file]").count()) === 0, "no file input for a viewer");
      check((await page.getByText("Analyse a photo").count()) === 0, "no upload section");
      const nav = await page.getByRole("navigation", { name: "Pages" }).innerText();
      check(!nav.includes("Admin") && !nav.includes("NCS"), `a viewer's navigation: ${nav}`);
    });
    await context.close();
  }

  // A manager: reload keeps the session; a rule from a sentence; the example photo.
  {
    const { context, page } = await newSession(browser, "manager");
    await step("sign in and reload: still signed in", async () => {
      await page.goto(`${base}/`);
      await signIn(page, "manager");
      await signedInAs(page, "manager");
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === "h200_refresh");
      check(session?.httpOnly && session.sameSite === "Strict" && session.path === "/auth", `the refresh cookie: ${JSON.stringify(session && { ...session, value: "…" })}`);
      const visible = await page.evaluate(() => document.cookie);
      check(!visible.includes("h200_refresh"), "the refresh token is not readable by scripts");
      check(visible.includes("h200_session=1"), `the session marker is: ${visible}`);
      await page.reload();
      await signedInAs(page, "manager");
    });
    await step("draft and save a rule from a sentence", async () => {
      await draftAndSaveRule(page);
      await screenshot(page, "rules");
    });
    await step("upload the example photo: two boxes and the rule's alert", async () => {
      await uploadPhoto(page);
      await screenshot(page, "mugs");
    });
    await step("servers are listed with controls for a manager", async () => {
      await open(page, "servers");
      await page.locator("table tbody tr").first().waitFor();
      check((await page.getByRole("button", { name: /^pause / }).count()) >= 1, "pause control");
      await screenshot(page, "servers");
    });
    await context.close();
  }

  // An admin: the NCS demo stream, the audit log, the account page, sign-out.
  {
    const { context, page } = await newSession(browser, "admin");
    await page.goto(`${base}/`);
    await signIn(page, "admin");
    await signedInAs(page, "admin");
    await step("a demo stream is plotted in more than one cluster", async () => {
      await open(page, "ncs");
      await page.getByLabel("Stream name").fill(`browser-${Date.now()}`);
      await page.getByRole("button", { name: "Send a demo mixture" }).click();
      await page.getByText("Sent 1000 points.").waitFor({ timeout: 120_000 });
      const clusters = await page
        .locator("svg.scatter circle.point")
        .evaluateAll((points) => new Set(points.map((p) => p.getAttribute("fill"))).size);
      check(clusters > 1, `points coloured by more than one cluster (${clusters} colours)`);
      await page.locator("table tbody tr").first().waitFor();
      await screenshot(page, "ncs");
    });
    await step("an admin sees audit events", async () => {
      await open(page, "admin");
      await page.locator("table.audit tbody tr").first().waitFor();
      const types = await page.locator("table.audit tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.eventType));
      check(types.includes("login_success"), `audit events include login_success: ${types.slice(0, 10)}`);
      await page.getByRole("heading", { name: "Users" }).waitFor();
      await page.locator("table tbody tr", { hasText: users.viewer.username }).waitFor();
      await screenshot(page, "admin");
    });
    await step("the account page renders the MFA QR code locally", async () => {
      await open(page, "account");
      await page.getByRole("button", { name: "Set up two-factor sign-in" }).click();
      await page.getByRole("img", { name: "QR code of the authenticator secret" }).waitFor();
      await screenshot(page, "account");
    });
    await step("sign out: the session is gone after a reload", async () => {
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to H200" }).waitFor();
      const left = (await context.cookies()).map((c) => c.name);
      check(!left.includes("h200_refresh") && !left.includes("h200_session"), `the cookies are cleared: ${left}`);
      await page.reload();
      await page.getByRole("heading", { name: "Sign in to H200" }).waitFor();
    });
    await context.close();
  }
}

async function uploadFlow(browser) {
  const { context, page } = await newSession(browser, "manager");
  await step("sign in and reload: still signed in", async () => {
    await page.goto(`${base}/`);
    await signIn(page, "manager");
    await signedInAs(page, "manager");
    await page.reload();
    await signedInAs(page, "manager");
  });
  await step("draft and save a rule from a sentence", () => draftAndSaveRule(page));
  await step("upload the example photo: two boxes and the rule's alert", async () => {
    await uploadPhoto(page);
    await screenshot(page, "mugs");
  });
  await step("sign out", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to H200" }).waitFor();
  });
  await context.close();
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless=new", "--no-sandbox", "--disable-gpu"],
});
let failed = null;
try {
  await (flow === "upload" ? uploadFlow(browser) : fullFlow(browser));
} catch (error) {
  failed = error;
} finally {
  await browser.close();
}
console.log(steps.join("\n"));
if (notes.length) console.log(notes.join("\n"));
if (problems.length) console.log(`browser problems:\n${problems.join("\n")}`);
if (failed) console.log(`failed: ${failed.stack ?? failed}`);
process.exit(failed || problems.length ? 1 : 0);
