"""pyzoom, unmodified and unconfigured as to URLs: its token helpers
(pyzoom/oauth.py) post to the hard-coded https://zoom.us/oauth/token and its
client's base_url defaults to https://api.zoom.us/v2. The runner starts it with
two environment variables only: HTTPS_PROXY (grantmux's forward proxy) and
REQUESTS_CA_BUNDLE (the bundle grantmux exported: the platform's roots plus its
CA; requests replaces its store with that file). Its own code exchange
(`request_tokens`), its own refresh (`refresh_tokens`) and API calls."""

import os
from urllib.parse import quote

from pyzoom import ZoomClient, oauth

from common import (CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Failure, authorize, expect,
                    grantmux_side, log, run)

USER = "pyzoom-user"


def me(client, what):
    got = expect(client.raw.get("/users/me"), 200, what).json()
    if got.get("id") != USER:
        raise Failure(f"{what}: /users/me answered for {got.get('id')!r}, not {USER!r}")


def flow():
    for name in ("HTTPS_PROXY", "REQUESTS_CA_BUNDLE"):
        if not os.environ.get(name):
            raise Failure(f"{name} is not set: the runner starts this flow with it")
    before = grantmux_side()

    # The authorization URL exactly as pyzoom's oauth_wizard builds it (the
    # wizard itself opens a browser and waits on a socket), plus the sim's
    # login_hint; fetched through the proxy as a browser would.
    url = (f"https://zoom.us/oauth/authorize?response_type=code&client_id={quote(CLIENT_ID)}"
           f"&redirect_uri={quote(REDIRECT_URI, safe='')}&login_hint={USER}")
    code, _, hops = authorize(url)
    log(f"authorize went through {hops}")
    if hops[0] != "zoom.us":
        raise Failure(f"the authorize walk did not start at zoom.us: {hops}")

    tokens = oauth.request_tokens(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, code)
    client = ZoomClient(access_token=tokens["access_token"])  # base_url: https://api.zoom.us/v2
    me(client, "GET /users/me after request_tokens")
    created = expect(client.raw.post("/users/me/meetings", body={
        "topic": "grantmux matrix", "type": 2, "start_time": "2030-01-01T10:00:00",
        "duration": 30, "timezone": "UTC"}), 201, "raw.post('/users/me/meetings')").json()
    listed = client.meetings.list_meetings()
    if created["id"] not in [m.id for m in listed.meetings]:
        raise Failure("list_meetings does not show the meeting just created")
    if not client.meetings.delete_meeting(created["id"]):
        raise Failure("delete_meeting answered False")

    refreshed = oauth.refresh_tokens(CLIENT_ID, CLIENT_SECRET, tokens["refresh_token"])
    if refreshed.get("refresh_token") in (None, tokens["refresh_token"]):
        raise Failure(f"refresh_tokens answered no new refresh token: {sorted(refreshed)}")
    me(ZoomClient(access_token=refreshed["access_token"]), "GET /users/me after refresh_tokens")

    after = grantmux_side()
    zoom, via = after.zoom_calls - before.zoom_calls, after.grantmux_calls - before.grantmux_calls
    if zoom != via:
        raise Failure(f"token calls at Zoom ({zoom}) differ from grantmux's ({via})")
    tokens_served = after.served_since(before, "oauth_token", 200)
    if tokens_served != 2 or after.served_since(before, "oauth_authorize", 302) != 1:
        raise Failure(f"grantmux answered {tokens_served} token requests with 200 (wanted pyzoom's 2) and "
                      f"{after.served_since(before, 'oauth_authorize', 302)} authorize redirects (wanted 1)")
    if zoom.exchange != 1:
        raise Failure(f"Zoom saw {zoom.exchange} code exchanges, wanted grantmux's 1")
    if not any(g["subject"] == f"user:{USER}" and g["state"] == "live" for g in after.grants):
        raise Failure(f"grantmux's GET /grants lists no live user:{USER}")
    return ("HTTPS_PROXY + REQUESTS_CA_BUNDLE only: authorize at zoom.us via grantmux, oauth.request_tokens, "
            "GET /users/me, meeting create/list/delete, oauth.refresh_tokens, GET /users/me at api.zoom.us; "
            f"grantmux answered its 2 token calls; Zoom's token calls = grantmux's ({zoom}); "
            f"/grants lists user:{USER}")


if __name__ == "__main__":
    run("pyzoom", flow)
