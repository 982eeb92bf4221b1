// simple-oauth2's ClientCredentials: grant_type=client_credentials (an app
// token, no user) through grantmux, then a chatbot message with it: the sim
// takes app tokens only on POST /v2/im/chat/messages (201). Only
// auth.tokenHost changes.

import { createRequire } from "node:module";
import {
  ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, GRANTMUX, Failure, answer, call, grantmuxSide, observe, run, usersMe,
} from "./common.mjs";

const { ClientCredentials } = createRequire(import.meta.url)("simple-oauth2");

const chat = (token) => call(`${GRANTMUX}/v2/im/chat/messages`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  body: JSON.stringify({
    robot_jid: "matrix-bot@xmpp.zoom.us", to_jid: "sim-user@xmpp.zoom.us", account_id: ACCOUNT_ID,
    content: { head: { text: "grantmux client matrix" } },
  }),
});

async function flow() {
  const client = new ClientCredentials({
    client: { id: CLIENT_ID, secret: CLIENT_SECRET },
    auth: { tokenHost: GRANTMUX },
  });
  const start = await grantmuxSide();
  const first = await client.getToken({});
  const sent = await chat(first.token.access_token);
  if (sent.status !== 201 || !sent.body?.message_id) {
    throw new Failure(`POST /v2/im/chat/messages with the app token: wanted 201, got ${answer(sent.status, sent.body)}`);
  }
  // A second app token from the same library: grantmux mints once for the app.
  const second = await client.getToken({});
  const again = await chat(second.token.access_token);
  if (again.status !== 201) throw new Failure(`the second app token: ${answer(again.status, again.body)}`);
  const before = await grantmuxSide();
  const mints = before.zoomCalls.minus(start.zoomCalls).mint;
  if (mints > 1) throw new Failure(`two app tokens cost ${mints} mints at Zoom, wanted at most 1`);
  if (!before.grants.some((g) => g.subject === "app" && g.client_id === CLIENT_ID && g.state === "live")) {
    throw new Failure(`grantmux's GET /grants lists no live app grant: ${before.grants.map((g) => g.subject)}`);
  }
  // An app token acts for no user: the sim refuses it on /users/me with Zoom's
  // missing-scope answer (400 code 4711, ZOOM.md §4), which is no dead token:
  // grantmux passes it on and mints nothing.
  const me = await usersMe(second.token.access_token);
  if (me.status === 200) throw new Failure(`GET /v2/users/me with an app token answered 200 ${JSON.stringify(me.body)}`);
  const after = await grantmuxSide();
  const minted = after.zoomCalls.minus(before.zoomCalls).mint;
  if (minted > 0) throw new Failure(`a refused app token cost ${minted} more mint(s) at Zoom, wanted 0`);
  observe(`GET /v2/users/me with the app token got ${answer(me.status, me.body)}, and grantmux made `
    + `${minted} more client_credentials mint(s) at Zoom for it (the sim's missing-scope answer to an app `
    + `token on a user route is passed on, not read as a dead token)`);
  return `ClientCredentials getToken x2 (client_credentials, Basic) = ${mints} mint at Zoom, POST /v2/im/chat/messages 201 x2, `
    + `/grants lists the app grant; GET /v2/users/me with the app token ${me.status}`;
}

run("simple-oauth2", flow);
