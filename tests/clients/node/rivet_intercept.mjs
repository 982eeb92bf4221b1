// @zoom/rivet (Zoom's SDK), unmodified and unconfigured as to URLs: its token
// URL is the constant OAUTH_BASE_URL = "https://zoom.us" and its API base the
// default https://api.zoom.us/v2. The runner starts it with two environment
// variables only, HTTPS_PROXY (grantmux's forward proxy) and
// NODE_EXTRA_CA_CERTS (the CA `grantmux ca` printed); axios, Rivet's HTTP
// stack, tunnels to zoom.us and api.zoom.us with CONNECT and grantmux answers
// as them. No baseUrl, no token workaround: Rivet's own code exchange, its own
// refresh, its own Server-to-Server mint and its API calls.

import { createRequire } from "node:module";
import {
  ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Failure, authorize, grantmuxSide, log, run, servedSince,
} from "./common.mjs";
import { UsersOAuthClient, UsersS2SAuthClient } from "@zoom/rivet/users";
import { ChatbotClient } from "@zoom/rivet/chatbot";

const USER = "rivet-user";
// The axios Rivet itself imports (its dependency, resolved from its folder).
const rivetRequire = createRequire(createRequire(import.meta.url).resolve("@zoom/rivet/users"));
const axios = rivetRequire("axios");
const AXIOS_VERSION = JSON.parse(
  (await import("node:fs")).readFileSync(rivetRequire.resolve("axios/package.json"), "utf8"),
).version;

for (const name of ["HTTPS_PROXY", "NODE_EXTRA_CA_CERTS"]) {
  if (!process.env[name]) throw new Error(`${name} is not set: the runner starts this flow with it`);
}

// A token store as Rivet documents it ({ getLatestToken, storeToken }). It
// keeps what Rivet stores; `expireSoon()` makes it report the token as
// expiring within Rivet's 60 s margin, so Rivet's next call refreshes first,
// as it would an hour later.
class Store {
  token;
  stored = 0;
  soon = false;
  getLatestToken() {
    if (!this.token || !this.soon) return this.token;
    return { ...this.token, expirationTimeIso: new Date(Date.now() + 30_000).toISOString() };
  }
  storeToken(token) {
    this.token = token;
    this.stored += 1;
    this.soon = false;
  }
  expireSoon() { this.soon = true; }
}

async function getMe(client, what, want) {
  const me = await client.endpoints.users.getUser({ path: { userId: "me" } });
  if (me.statusCode !== 200 || me.data?.id !== want) {
    throw new Failure(`${what}: users.getUser(me) answered ${me.statusCode} ${JSON.stringify(me.data)}, not user ${want}`);
  }
  return me.data;
}

// The user's browser at Rivet's authorization URL (https://zoom.us/oauth/authorize,
// through the same proxy and CA): grantmux answers as zoom.us and redirects to
// Zoom's (the sim's) authorize, which sends the browser back with a code.
async function browse(fullUrl) {
  const url = new URL(fullUrl);
  if (url.origin !== "https://zoom.us") throw new Failure(`Rivet's authorization URL is not at zoom.us: ${fullUrl}`);
  url.searchParams.set("login_hint", USER); // the sim signs this user in
  const resp = await axios.get(url.toString(), { maxRedirects: 0, validateStatus: () => true, timeout: 15000 });
  const location = resp.headers.location;
  if (resp.status < 300 || resp.status > 399 || !location) {
    throw new Failure(`GET https://zoom.us/oauth/authorize through the proxy: wanted a redirect, got HTTP ${resp.status} ${JSON.stringify(resp.data)}`);
  }
  log(`https://zoom.us/oauth/authorize (grantmux) redirected to ${new URL(location, url).origin}`);
  return authorize(new URL(location, url).toString(), { state: url.searchParams.get("state") });
}

async function userOAuth() {
  const tokenStore = new Store();
  const redirect = new URL(REDIRECT_URI);
  const client = new UsersOAuthClient({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    tokenStore,
    installerOptions: { redirectUri: redirect.origin, redirectUriPath: redirect.pathname, stateStore: "matrix-state-secret-0123456789abcdef" },
    disableReceiver: true, // else it wants a webhooks secret and listens on 8080
  });
  const { fullUrl } = await client.auth.getAuthorizationUrl();
  const { code, callback } = await browse(fullUrl);
  // What Rivet's own receiver does at its callback: check the state, then initRedirectCode.
  await client.auth.installerOptions.stateStore.verifyState(new URL(callback).searchParams.get("state"));
  await client.auth.initRedirectCode(code); // POST https://zoom.us/oauth/token, grant_type=authorization_code
  const first = tokenStore.token;
  if (!first?.accessToken || !first.refreshToken) throw new Failure(`initRedirectCode stored ${JSON.stringify(first)}`);
  await getMe(client, "after initRedirectCode", USER);

  tokenStore.expireSoon();
  await getMe(client, "after Rivet's own refresh", USER); // getToken() refreshes first
  if (tokenStore.stored !== 2 || tokenStore.token.refreshToken === first.refreshToken) {
    throw new Failure(`Rivet did not refresh: ${tokenStore.stored} tokens stored`);
  }
  const user = await client.endpoints.users.getUser({ path: { userId: USER } });
  if (user.data?.id !== USER) throw new Failure(`users.getUser(${USER}) answered ${JSON.stringify(user.data)}`);
}

async function serverToServer() {
  // No tokenStore: Rivet's own TokenMemoryStore, and its own mint at zoom.us.
  const client = new UsersS2SAuthClient({
    clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, accountId: ACCOUNT_ID, disableReceiver: true,
  });
  const me = await getMe(client, "S2S", "sim-user");
  const again = await client.endpoints.users.getUser({ path: { userId: me.id } });
  if (again.data?.id !== me.id) throw new Failure(`S2S users.getUser(${me.id}) answered ${JSON.stringify(again.data)}`);
}

async function chatbot() {
  // Rivet's chatbot auth is grant_type=client_credentials (an app token), minted at zoom.us.
  const client = new ChatbotClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, disableReceiver: true });
  const sent = await client.endpoints.messages.sendChatbotMessage({
    body: { robot_jid: "matrix-bot@xmpp.zoom.us", to_jid: "sim-user@xmpp.zoom.us", account_id: ACCOUNT_ID,
      content: { head: { text: "grantmux client matrix" } } },
  });
  if (sent.statusCode !== 201 || !sent.data?.message_id) {
    throw new Failure(`sendChatbotMessage answered ${sent.statusCode} ${JSON.stringify(sent.data)}`);
  }
}

async function flow() {
  const before = await grantmuxSide();
  await userOAuth();
  await serverToServer();
  await chatbot();
  const after = await grantmuxSide();
  // Every token call the sim (Zoom) saw during this flow, by grant type, is
  // one grantmux made: nothing reached Zoom around grantmux.
  const zoom = after.zoomCalls.minus(before.zoomCalls);
  const viaGrantmux = after.grantmuxCalls.minus(before.grantmuxCalls);
  if (!zoom.equals(viaGrantmux)) {
    throw new Failure(`token calls at Zoom ${zoom} differ from grantmux's ${viaGrantmux}`);
  }
  // Rivet's four token calls (exchange, refresh, S2S mint, client_credentials) were answered by
  // grantmux: nothing else in this flow calls a token endpoint. grantmux itself
  // called Zoom for the exchange; the refresh and the mint it may answer from
  // the grants it holds.
  const tokens = servedSince(before, after, "oauth_token", 200);
  if (tokens !== 4 || servedSince(before, after, "oauth_authorize", 302) !== 1) {
    throw new Failure(`grantmux answered ${tokens} token requests with 200 (wanted Rivet's 4) and `
      + `${servedSince(before, after, "oauth_authorize", 302)} authorize redirects (wanted 1)`);
  }
  if (zoom.exchange !== 1) throw new Failure(`Zoom saw ${zoom.exchange} code exchanges, wanted grantmux's 1`);
  for (const subject of [`user:${USER}`, `account:${ACCOUNT_ID}`, "app"]) {
    if (!after.grants.some((g) => g.subject === subject && g.state === "live")) {
      throw new Failure(`grantmux's GET /grants lists no live ${subject}: ${after.grants.map((g) => g.subject)}`);
    }
  }
  return `axios ${AXIOS_VERSION}, HTTPS_PROXY + NODE_EXTRA_CA_CERTS only: getAuthorizationUrl (zoom.us via grantmux), `
    + `initRedirectCode, getUser(me), its own refresh (store expiring in 30 s), S2S mint, getUser x3 at api.zoom.us, `
    + `ChatbotClient (client_credentials) sendChatbotMessage 201; grantmux answered its 4 token calls; `
    + `Zoom's token calls = grantmux's (${zoom}); /grants lists user:${USER}, account:${ACCOUNT_ID}, app`;
}

run("@zoom/rivet", flow);
