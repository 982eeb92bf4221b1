"""Authlib (OAuth2Session from authlib.integrations.requests_client): a legacy
system's real refresh token, obtained straight from Zoom (the sim) before
grantmux existed, is handed to Authlib with grantmux as its token endpoint.
Authlib refreshes through grantmux (the adoption) and calls the API with the
virtual token; then one auto-refresh with client_secret_post."""

import time

import requests
from authlib.integrations.requests_client import OAuth2Session

from common import (CLIENT_ID, CLIENT_SECRET, GRANTMUX, REDIRECT_URI, SIM, Failure, answer,
                    authorize, expect, log, run)

USER = "authlib-user"
TOKEN_URL = f"{GRANTMUX}/oauth/token"
ME = f"{GRANTMUX}/v2/users/me"


def legacy_tokens():
    """What the legacy system holds: tokens from its own code exchange at Zoom."""
    legacy = OAuth2Session(CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI)
    url, state = legacy.create_authorization_url(f"{SIM}/oauth/authorize", login_hint=USER)
    _, callback, _ = authorize(url, state=state)
    token = legacy.fetch_token(f"{SIM}/oauth/token", authorization_response=callback, timeout=15)
    if not token.get("refresh_token"):
        raise Failure(f"the sim's code exchange gave no refresh token: {sorted(token)}")
    return dict(token)


def whose(resp, what):
    expect(resp, 200, what)
    if resp.json().get("id") != USER:
        raise Failure(f"{what}: answered for {resp.json().get('id')!r}, not {USER!r}")


def flow():
    real = legacy_tokens()
    log("legacy tokens obtained straight from the sim")

    updates = []
    session = OAuth2Session(CLIENT_ID, CLIENT_SECRET, token=real, token_endpoint=TOKEN_URL,
                            update_token=lambda token, **_: updates.append(token))
    # Its stored (real) access token is unknown to grantmux: Zoom's own 401 124,
    # which is what sends a legacy system to its refresh.
    resp = session.get(ME, timeout=15)
    if resp.status_code != 401 or resp.json().get("code") != 124:
        raise Failure(f"the legacy access token through grantmux: wanted 401 code 124, got {answer(resp)}")

    virtual = session.refresh_token(TOKEN_URL, timeout=15)
    if virtual["refresh_token"] == real["refresh_token"] or virtual["access_token"] == real["access_token"]:
        raise Failure("grantmux handed back the real tokens, not virtual ones")
    whose(session.get(ME, timeout=15), "GET /v2/users/me with the adopted grant's virtual token")

    # The legacy system retries with the same real refresh token (a lost answer):
    # grantmux gives the same grant again, not invalid_grant.
    retry = OAuth2Session(CLIENT_ID, CLIENT_SECRET, token=real, token_endpoint=TOKEN_URL)
    retry.refresh_token(TOKEN_URL, timeout=15)
    whose(retry.get(ME, timeout=15), "GET /v2/users/me after retrying the legacy refresh token")

    # client_secret_post, through Authlib's own expiry logic: an expired token
    # makes the next call refresh first, with the credentials in the form body.
    sent = []
    post = OAuth2Session(CLIENT_ID, CLIENT_SECRET, token_endpoint_auth_method="client_secret_post",
                         token={**virtual, "expires_at": int(time.time()) - 10},
                         token_endpoint=TOKEN_URL,
                         update_token=lambda token, **_: updates.append(token))
    post.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    whose(post.get(ME, timeout=15), "GET /v2/users/me after a client_secret_post refresh")
    token_calls = [r for r in sent if r.url == TOKEN_URL]
    if not token_calls:
        raise Failure("Authlib made no token call for the expired token")
    call = token_calls[0]
    body = call.body if isinstance(call.body, str) else (call.body or b"").decode()
    if "client_secret=" not in body or "Authorization" in call.headers:
        raise Failure("Authlib's refresh did not send client_secret_post")
    if not updates:
        raise Failure("Authlib's update_token hook was never called")
    return ("legacy refresh token (from the sim) adopted via refresh, 401/124 on the old access token, "
            "retry of the legacy refresh token, client_secret_post auto-refresh, GET /v2/users/me x3")


if __name__ == "__main__":
    run("authlib", flow)
