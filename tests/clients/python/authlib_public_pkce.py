"""Authlib as a public client: a Zoom app with PKCE and no client secret
(`[[app]] public = true` in grantmux for the sim's public client id). Authlib's
`token_endpoint_auth_method="none"` sends `client_id` in the form and no
credentials; the code exchange carries the S256 verifier; then a refresh and
API calls, all through grantmux's plain listener."""

import os

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from common import (GRANTMUX, REDIRECT_URI, Failure, authorize, expect, log, run)

PUBLIC_CLIENT_ID = os.environ["MATRIX_PUBLIC_CLIENT_ID"]
USER = "public-pkce-user"
TOKEN_URL = f"{GRANTMUX}/oauth/token"
ME = f"{GRANTMUX}/v2/users/me"


def whose(resp, what):
    expect(resp, 200, what)
    if resp.json().get("id") != USER:
        raise Failure(f"{what}: answered for {resp.json().get('id')!r}, not {USER!r}")


def check_public(request, what, *needed):
    """The token request carried no secret, no Basic, and the form fields needed."""
    body = request.body if isinstance(request.body, str) else (request.body or b"").decode()
    if "Authorization" in request.headers or "client_secret" in body:
        raise Failure(f"{what}: Authlib sent client credentials for a public client")
    for field in ("client_id=",) + needed:
        if field not in body:
            raise Failure(f"{what}: no {field.rstrip('=')} in the form: {body}")


def flow():
    sent = []
    session = OAuth2Session(PUBLIC_CLIENT_ID, redirect_uri=REDIRECT_URI,
                            token_endpoint_auth_method="none", code_challenge_method="S256")
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    verifier = generate_token(48)
    url, state = session.create_authorization_url(f"{GRANTMUX}/oauth/authorize",
                                                  code_verifier=verifier, login_hint=USER)
    if "code_challenge_method=S256" not in url:
        raise Failure(f"Authlib built no S256 challenge: {url}")
    code, callback, hops = authorize(url, state=state)
    log(f"authorize went through {hops}")

    token = session.fetch_token(TOKEN_URL, authorization_response=callback, code_verifier=verifier,
                                timeout=15)
    check_public(sent[-1], "code exchange", "code_verifier=")
    if not token.get("refresh_token"):
        raise Failure(f"the code exchange answered no refresh token: {sorted(token)}")
    whose(session.get(ME, timeout=15), "GET /v2/users/me after the code exchange")

    refreshed = session.refresh_token(TOKEN_URL, timeout=15)
    check_public(sent[-1], "refresh", "refresh_token=")
    if refreshed["refresh_token"] == token["refresh_token"]:
        raise Failure("the refresh answered the same refresh token")
    whose(session.get(ME, timeout=15), "GET /v2/users/me after the refresh")
    return ("public client (no secret, token_endpoint_auth_method=none): authorize+PKCE S256, "
            "code exchange with code_verifier, refresh, GET /v2/users/me x2")


if __name__ == "__main__":
    run("authlib", flow)
