// What every Node flow of the client matrix shares. The runner
// (tests/clients/run.sh) sets the MATRIX_* variables; each flow calls
// run(packageName, flow), where flow() resolves to a short description of what
// ran, and the last line on stdout is one JSON object the runner reads.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const GRANTMUX = process.env.MATRIX_GRANTMUX_URL;
export const GRANTMUX_ADMIN = process.env.MATRIX_GRANTMUX_ADMIN_URL;
export const SIM = process.env.MATRIX_SIM_URL;
export const CLIENT_ID = process.env.MATRIX_CLIENT_ID;
export const CLIENT_SECRET = process.env.MATRIX_CLIENT_SECRET;
export const ACCOUNT_ID = process.env.MATRIX_ACCOUNT_ID;
// Registered nowhere and never fetched: the code is read from the Location
// header that points at it.
export const REDIRECT_URI = "http://127.0.0.1:9/callback";

const here = path.dirname(fileURLToPath(import.meta.url));

export class Failure extends Error {}

export const callerKey = (name) =>
  process.env[`MATRIX_CALLER_KEY_${name.toUpperCase().replace(/[-@/]/g, "_")}`];

export const log = (msg) => process.stderr.write(`${msg}\n`);

const observed = [];
// Something seen and reported with the result, neither a pass nor a failure.
export function observe(note) {
  log(`observed: ${note}`);
  observed.push(note);
}

// `HTTP 400 {"reason":...}`: what a server said, short enough for one line.
export function answer(status, body) {
  let text = (typeof body === "string" ? body : JSON.stringify(body) ?? "").replace(/\s+/g, " ").trim();
  if (text.length > 300) text = `${text.slice(0, 300)}...`;
  return `HTTP ${status} ${text}`;
}

// fetch() with a timeout; resolves to { status, body (parsed JSON or text), headers }.
export async function call(url, init = {}) {
  const resp = await fetch(url, { ...init, signal: AbortSignal.timeout(15000) });
  const text = await resp.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: resp.status, body, headers: resp.headers };
}

export async function expect(promise, status, what) {
  const r = await promise;
  if (r.status !== status) throw new Failure(`${what}: wanted HTTP ${status}, got ${answer(r.status, r.body)}`);
  return r;
}

// GET /v2/users/me through grantmux with a bearer token.
export const usersMe = (token) =>
  call(`${GRANTMUX}/v2/users/me`, { headers: { Authorization: `Bearer ${token}` } });

// Follows /oauth/authorize redirects by hand from `url` until one points at
// `redirectUri` (not fetched). Returns { code, callback, hops }.
export async function authorize(url, { redirectUri = REDIRECT_URI, state } = {}) {
  const hops = [];
  for (let i = 0; i < 5; i++) {
    const resp = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(15000) });
    hops.push(new URL(url).host);
    const location = resp.headers.get("location");
    if (resp.status < 300 || resp.status > 399 || !location) {
      throw new Failure(`GET ${new URL(url).pathname} at ${hops.at(-1)}: wanted a redirect, got ${answer(resp.status, await resp.text())}`);
    }
    const next = new URL(location, url).toString();
    if (next.startsWith(redirectUri)) {
      const q = new URL(next).searchParams;
      if (!q.get("code")) throw new Failure(`authorize redirected to the callback without a code: ${next}`);
      if (state !== undefined && q.get("state") !== state) {
        throw new Failure(`authorize lost the state: sent ${state}, got ${q.get("state")}`);
      }
      return { code: q.get("code"), callback: next, hops };
    }
    url = next;
  }
  throw new Failure(`authorize: more than 5 redirects: ${hops}`);
}

// Token calls by kind: code exchanges, refreshes, mints (S2S and client_credentials).
export class TokenCalls {
  constructor(exchange = 0, refresh = 0, mint = 0) {
    Object.assign(this, { exchange, refresh, mint });
  }
  minus(o) { return new TokenCalls(this.exchange - o.exchange, this.refresh - o.refresh, this.mint - o.mint); }
  equals(o) { return this.exchange === o.exchange && this.refresh === o.refresh && this.mint === o.mint; }
  toString() { return `exchange ${this.exchange}, refresh ${this.refresh}, mint ${this.mint}`; }
}

// What Zoom (the sim's /_sim/stats) and grantmux (admin /metrics, /grants) say
// now: the token calls Zoom received, the ones grantmux made (any result), and
// grantmux's grants. A flow compares two of these around what it ran.
export async function grantmuxSide() {
  const stats = await expect(call(`${SIM}/_sim/stats`), 200, "GET /_sim/stats");
  const t = stats.body.token_requests;
  const zoomCalls = new TokenCalls(t.authorization_code, t.refresh_token,
    t.account_credentials + (t.client_credentials ?? 0));
  const metrics = await expect(call(`${GRANTMUX_ADMIN}/metrics`), 200, "GET admin /metrics");
  const kinds = { exchange: 0, refresh: 0, mint: 0 };
  for (const m of metrics.body.matchAll(/^grantmux_zoom_token_calls_total\{kind="(\w+)"[^}]*\} (\d+)/gm)) {
    const kind = m[1] === "adopt" ? "refresh" : m[1];
    if (!(kind in kinds)) throw new Failure(`grantmux reports token calls of an unknown kind ${m[1]}`);
    kinds[kind] += Number(m[2]);
  }
  // Requests grantmux answered, by route and status ("oauth_token 200": n).
  const served = {};
  for (const m of metrics.body.matchAll(/^grantmux_requests_total\{route="(\w+)",status="(\d+)"\} (\d+)/gm)) {
    served[`${m[1]} ${m[2]}`] = Number(m[3]);
  }
  const grants = await expect(call(`${GRANTMUX_ADMIN}/grants`), 200, "GET admin /grants");
  return {
    served,
    zoomCalls,
    grantmuxCalls: new TokenCalls(kinds.exchange, kinds.refresh, kinds.mint),
    grants: grants.body.grants,
  };
}

// How many more requests grantmux answered on `route` with `status` in `after` than in `before`.
export const servedSince = (before, after, route, status) =>
  (after.served[`${route} ${status}`] ?? 0) - (before.served[`${route} ${status}`] ?? 0);

function installedVersion(pkg) {
  const file = path.join(here, "..", "node_modules", ...pkg.split("/"), "package.json");
  return JSON.parse(readFileSync(file, "utf8")).version;
}

// A library's own error, with what the server answered when the library kept it.
export function describe(err) {
  if (err instanceof Failure) return err.message;
  const inner = err?.oauthError ?? err?.data?.payload ?? err?.cause;
  let text = `${err?.name ?? "Error"}: ${err?.message ?? String(err)}`;
  if (err?.oauthError?.statusCode) text += ` (${answer(err.oauthError.statusCode, err.oauthError.data)})`;
  else if (err?.output?.statusCode) text += ` (${answer(err.output.statusCode, err.data?.payload)})`;
  else if (inner && inner !== err) text += ` (cause: ${inner.message ?? JSON.stringify(inner)})`;
  return text.replace(/\s+/g, " ");
}

export async function run(pkg, flow) {
  const result = { library: pkg, version: installedVersion(pkg) };
  try {
    result.ok = true;
    result.ran = await flow();
  } catch (err) {
    log(err?.stack ?? String(err));
    result.ok = false;
    result.reason = describe(err);
  }
  if (observed.length) result.observed = observed.join("; ");
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}
