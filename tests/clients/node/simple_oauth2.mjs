// simple-oauth2: authorization code, exchange, refresh, API calls with Node's
// fetch, and revoke, all through grantmux. Only auth.tokenHost changes (the
// paths are Zoom's, which are the library's defaults).

import { createRequire } from "node:module";
import {
  CLIENT_ID, CLIENT_SECRET, GRANTMUX, REDIRECT_URI, Failure, answer, authorize, expect, log, run, usersMe,
} from "./common.mjs";

const { AuthorizationCode } = createRequire(import.meta.url)("simple-oauth2");
const USER = "simple-oauth2-user";

async function me(token, what) {
  const r = await expect(usersMe(token), 200, what);
  if (r.body.id !== USER) throw new Failure(`${what}: answered for ${r.body.id}, not ${USER}`);
}

async function flow() {
  const client = new AuthorizationCode({
    client: { id: CLIENT_ID, secret: CLIENT_SECRET },
    auth: { tokenHost: GRANTMUX }, // tokenPath /oauth/token, authorizePath /oauth/authorize, revokePath /oauth/revoke
  });
  const state = "s-" + Math.random().toString(36).slice(2);
  const url = client.authorizeURL({ redirect_uri: REDIRECT_URI, state, login_hint: USER });
  const { code, hops } = await authorize(url, { state });
  log(`authorize went through ${hops}`);

  const token = await client.getToken({ code, redirect_uri: REDIRECT_URI });
  await me(token.token.access_token, "GET /v2/users/me after the code exchange");

  const refreshed = await token.refresh();
  if (!refreshed.token.access_token || !refreshed.token.refresh_token) {
    throw new Failure(`refresh answered no tokens: ${Object.keys(refreshed.token)}`);
  }
  await me(refreshed.token.access_token, "GET /v2/users/me after the refresh");

  await refreshed.revokeAll(); // access token, then refresh token
  const after = await usersMe(refreshed.token.access_token);
  if (after.status !== 401 || after.body?.code !== 124) {
    throw new Failure(`the revoked access token: wanted 401 code 124, got ${answer(after.status, after.body)}`);
  }
  try {
    await refreshed.refresh();
    throw new Failure("the revoked refresh token still refreshed");
  } catch (err) {
    if (err instanceof Failure) throw err;
    const status = err?.output?.statusCode;
    const error = err?.data?.payload?.error;
    if (status !== 400 || error !== "invalid_grant") {
      throw new Failure(`refresh with the revoked token: wanted 400 invalid_grant, got ${answer(status, err?.data?.payload)}`);
    }
  }
  return "authorizeURL, code exchange (Basic), refresh, GET /v2/users/me x2, revokeAll, then 401/124 and invalid_grant";
}

run("simple-oauth2", flow);
