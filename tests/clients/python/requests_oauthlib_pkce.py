"""requests-oauthlib: authorization code with PKCE (S256), refresh, API calls,
all through grantmux with OAuth2Session. Only URLs change, plus oauthlib's own
switch for a plain-http token URL (grantmux as a sidecar on loopback)."""

import os

from common import (CLIENT_ID, CLIENT_SECRET, GRANTMUX, REDIRECT_URI, Failure, authorize, expect,
                    log, run)

# oauthlib refuses http:// token and API URLs unless this is set; a sidecar on
# http://127.0.0.1 needs it (it is the library's documented switch, read at call time).
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

from requests_oauthlib import OAuth2Session  # noqa: E402

USER = "rol-user"
TOKEN_URL = f"{GRANTMUX}/oauth/token"


def me(session, what):
    resp = expect(session.get(f"{GRANTMUX}/v2/users/me", timeout=15), 200, what)
    if resp.json().get("id") != USER:
        raise Failure(f"{what}: /v2/users/me answered for {resp.json().get('id')!r}, not {USER!r}")


def flow():
    session = OAuth2Session(CLIENT_ID, redirect_uri=REDIRECT_URI, pkce="S256")
    url, state = session.authorization_url(f"{GRANTMUX}/oauth/authorize", login_hint=USER)
    if "code_challenge_method=S256" not in url:
        raise Failure(f"the library built no S256 challenge: {url}")
    code, callback, hops = authorize(url, state=state)
    log(f"authorize went through {hops}")
    # Basic credentials (its default with client_secret) plus code_verifier.
    token = session.fetch_token(TOKEN_URL, authorization_response=callback,
                                client_secret=CLIENT_SECRET, timeout=15)
    first = token["access_token"]
    me(session, "GET /v2/users/me after the code exchange")

    token = session.refresh_token(TOKEN_URL, auth=(CLIENT_ID, CLIENT_SECRET), timeout=15)
    if not token.get("access_token") or not token.get("refresh_token"):
        raise Failure(f"refresh answered no tokens: {sorted(token)}")
    me(session, "GET /v2/users/me after the refresh")
    log(f"access token changed on refresh: {token['access_token'] != first}")
    return "authorize+PKCE S256, code exchange, refresh, GET /v2/users/me x2"


if __name__ == "__main__":
    run("requests-oauthlib", flow)
