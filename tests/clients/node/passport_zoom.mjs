// @giorgosavgeris/passport-zoom-oauth2: the strategy's own authorize redirect,
// its own token exchange (node-oauth, client_secret_post: credentials in the
// form body, no customHeaders) and its own profile call, driven the way
// passport drives a strategy (as chai-passport-strategy does): authenticate(req)
// with success/fail/error/redirect hooks. Only its three URL options change.

import { createRequire } from "node:module";
import {
  CLIENT_ID, CLIENT_SECRET, GRANTMUX, REDIRECT_URI, Failure, authorize, expect, log, run, usersMe,
} from "./common.mjs";

const ZoomStrategy = createRequire(import.meta.url)("@giorgosavgeris/passport-zoom-oauth2");

// One passport step: resolves with the hook the strategy called.
function step(strategy, req) {
  return new Promise((resolve) => {
    strategy.success = (user, info) => resolve({ hook: "success", user, info });
    strategy.fail = (challenge, status) => resolve({ hook: "fail", challenge, status });
    strategy.error = (err) => resolve({ hook: "error", err });
    strategy.redirect = (url, status) => resolve({ hook: "redirect", url, status });
    strategy.pass = () => resolve({ hook: "pass" });
    strategy.authenticate(req, {});
  });
}

async function flow() {
  let verified = null;
  const strategy = new ZoomStrategy(
    {
      clientID: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      callbackURL: REDIRECT_URI,
      state: true, // passport's nonce in the session, checked on the way back
      authorizationURL: `${GRANTMUX}/oauth/authorize`,
      tokenURL: `${GRANTMUX}/oauth/token`,
      // The option is `profileUrl` in the library's source (lib/strategy.js);
      // `profileURL` would be ignored and the profile fetched from api.zoom.us.
      profileUrl: `${GRANTMUX}/v2/users/me`,
    },
    (accessToken, refreshToken, profile, done) => {
      verified = { accessToken, refreshToken, profile };
      done(null, { id: profile.id });
    },
  );
  const session = {};

  const start = await step(strategy, { query: {}, session, headers: {} });
  if (start.hook !== "redirect") throw new Failure(`first authenticate(): wanted a redirect, got ${start.hook}`);
  if (!start.url.startsWith(`${GRANTMUX}/oauth/authorize`)) throw new Failure(`redirected to ${start.url}`);
  const state = new URL(start.url).searchParams.get("state");
  const { code, hops } = await authorize(start.url, { state });
  log(`authorize went through ${hops}`);

  const done = await step(strategy, { query: { code, state }, session, headers: {} });
  if (done.hook === "error") throw done.err;
  if (done.hook !== "success") throw new Failure(`callback authenticate(): ${done.hook} ${JSON.stringify(done.challenge ?? "")}`);
  if (!verified?.profile?.id) throw new Failure("the verify callback got no profile");
  if (done.user.id !== verified.profile.id) throw new Failure("success() got another user than verify made");
  if (verified.profile.provider !== "zoom" || !verified.profile.emails?.[0]?.value) {
    throw new Failure(`profile not parsed: ${JSON.stringify(verified.profile).slice(0, 200)}`);
  }
  if (!verified.refreshToken) throw new Failure("the token answer had no refresh_token");
  const me = await expect(usersMe(verified.accessToken), 200, "GET /v2/users/me with the strategy's access token");
  if (me.body.id !== verified.profile.id) throw new Failure("the access token acts for another user than the profile");
  return `strategy redirect (state), token exchange (client_secret_post), profile ${verified.profile.id} via profileUrl, GET /v2/users/me`;
}

run("@giorgosavgeris/passport-zoom-oauth2", flow);
