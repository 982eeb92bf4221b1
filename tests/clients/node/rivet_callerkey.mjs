// @zoom/rivet (Zoom's SDK): every module hard-codes OAUTH_BASE_URL =
// "https://zoom.us", so its token calls cannot be redirected by options. The
// workaround runs here: a grantmux [[caller]] key handed to Rivet through its
// `tokenStore` option (S2S), `baseUrl` pointed at grantmux's /v2.

import {
  ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, GRANTMUX, Failure, callerKey, run,
} from "./common.mjs";
import { UsersS2SAuthClient } from "@zoom/rivet/users";

async function flow() {
  const key = callerKey("rivet");
  // Rivet's store shape (users.mjs, S2SAuth.getToken/mapAccessToken): it uses the
  // stored token until 60 s before expirationTimeIso, then mints at zoom.us.
  const tokenStore = {
    getLatestToken: () => ({ accessToken: key, expirationTimeIso: "2099-01-01T00:00:00.000Z", scopes: [] }),
    storeToken: () => { throw new Failure("Rivet minted a token at zoom.us instead of using the stored key"); },
  };
  const client = new UsersS2SAuthClient({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    accountId: ACCOUNT_ID,
    tokenStore,
    baseUrl: `${GRANTMUX}/v2`,
    // Without this Rivet wants a webhooks secret and builds an HTTP receiver (port 8080).
    disableReceiver: true,
  });
  const me = await client.endpoints.users.getUser({ path: { userId: "me" } });
  if (me.statusCode !== 200 || !me.data?.id) throw new Failure(`users.getUser(me): ${me.statusCode} ${JSON.stringify(me.data)}`);
  const byId = await client.endpoints.users.getUser({ path: { userId: me.data.id } });
  if (byId.data?.id !== me.data.id) throw new Failure(`users.getUser(${me.data.id}) answered ${JSON.stringify(byId.data)}`);
  return `tokenStore holding a [[caller]] key, baseUrl grantmux/v2: users.getUser(me), users.getUser(${me.data.id})`;
}

run("@zoom/rivet", flow);
