"""zoom-python-client: its token URL is the class attribute
ZoomAuthApiClient.oauth_base_url (https://zoom.us/oauth) and its API endpoint
defaults to https://api.zoom.us/v2. The runner starts it with HTTPS_PROXY
(grantmux's forward proxy) and REQUESTS_CA_BUNDLE (grantmux's exported
bundle), so both names reach grantmux.

Its own Server-to-Server mint is a POST with the parameters in the query
string, no body and `Content-type: application/json`, which grantmux refuses
(unsupported_grant_type, as the sim does), so the API calls run with the
workaround: a grantmux [[caller]] key in ZOOM_ACCESS_TOKEN with a far
ZOOM_ACCESS_TOKEN_EXPIRE (read from the environment before it would mint).
What its own mint gets through the proxy is recorded, not asserted."""

import os
import time

import requests

from common import (ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, Failure, answer, caller_key, grantmux_side,
                    observe, run)

os.environ["ZOOM_ACCESS_TOKEN"] = caller_key("zoom-python-client")
os.environ["ZOOM_ACCESS_TOKEN_EXPIRE"] = str(int(time.time()) + 10 * 365 * 24 * 3600)

from zoom_python_client.zoom_api_client import ZoomApiClient  # noqa: E402


def flow():
    for name in ("HTTPS_PROXY", "REQUESTS_CA_BUNDLE"):
        if not os.environ.get(name):
            raise Failure(f"{name} is not set: the runner starts this flow with it")
    client = ZoomApiClient(ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET)  # api_endpoint: https://api.zoom.us/v2
    me = client.users.get_user("me")
    if not me.get("id"):
        raise Failure(f"users.get_user('me') answered {me}")
    again = client.users.get_user(me["id"])
    if again.get("id") != me["id"]:
        raise Failure(f"users.get_user({me['id']!r}) answered {again}")
    if os.environ["ZOOM_ACCESS_TOKEN"] != caller_key("zoom-python-client"):
        raise Failure("the library replaced the caller key: it minted a token at zoom.us")

    observe_own_mint(me["id"])
    return "HTTPS_PROXY + REQUESTS_CA_BUNDLE, caller key in ZOOM_ACCESS_TOKEN: users.get_user('me'), users.get_user(id) at api.zoom.us"


def observe_own_mint(user_id):
    """Without the key, the library mints at https://zoom.us/oauth/token itself,
    through the proxy: what grantmux answers, and that Zoom saw nothing of it."""
    del os.environ["ZOOM_ACCESS_TOKEN"], os.environ["ZOOM_ACCESS_TOKEN_EXPIRE"]
    before = grantmux_side()
    client = ZoomApiClient(ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET)
    try:
        ok = client.users.get_user("me").get("id") == user_id
        what = f"its own S2S mint at zoom.us through grantmux {'works' if ok else 'gave a token for another user'}"
    except requests.HTTPError as e:
        what = (f"its own S2S mint at https://zoom.us/oauth/token through the proxy gets {answer(e.response)} "
                f"from grantmux: it POSTs `Content-type: application/json`, no body, parameters in the "
                f"query string (the sim answers the same)")
    after = grantmux_side()
    reached = after.zoom_calls - before.zoom_calls
    observe(f"{what}; Zoom saw token calls: {reached}")


if __name__ == "__main__":
    run("zoom-python-client", flow)
