// What every Node flow of the client matrix shares. The runner
// (tests/clients/run.sh) sets the MATRIX_* variables; each flow calls
// run(packageName, flow), where flow() resolves to a short description of what
// ran, and the last line on stdout is one JSON object the runner reads.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const GRANTMUX = process.env.MATRIX_GRANTMUX_URL;
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
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}
