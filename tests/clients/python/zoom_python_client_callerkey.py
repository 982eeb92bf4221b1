"""zoom-python-client: its token URL is the class attribute
ZoomAuthApiClient.oauth_base_url (https://zoom.us/oauth), so it runs with the
workaround: a grantmux [[caller]] key in ZOOM_ACCESS_TOKEN with a far
ZOOM_ACCESS_TOKEN_EXPIRE (the library reads both from the environment before
it would mint), and `api_endpoint` pointed at grantmux."""

import os
import time

import requests

from common import (ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, GRANTMUX, Failure, answer, caller_key,
                    observe, run)

os.environ["ZOOM_ACCESS_TOKEN"] = caller_key("zoom-python-client")
os.environ["ZOOM_ACCESS_TOKEN_EXPIRE"] = str(int(time.time()) + 10 * 365 * 24 * 3600)

from zoom_python_client.zoom_api_client import ZoomApiClient  # noqa: E402
from zoom_python_client.zoom_auth_api.zoom_auth_api_client import ZoomAuthApiClient  # noqa: E402


def flow():
    client = ZoomApiClient(ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, api_endpoint=f"{GRANTMUX}/v2")
    me = client.users.get_user("me")
    if not me.get("id"):
        raise Failure(f"users.get_user('me') answered {me}")
    again = client.users.get_user(me["id"])
    if again.get("id") != me["id"]:
        raise Failure(f"users.get_user({me['id']!r}) answered {again}")
    if os.environ["ZOOM_ACCESS_TOKEN"] != caller_key("zoom-python-client"):
        raise Failure("the library replaced the caller key: it minted a token at zoom.us")

    observe_own_mint(me["id"])
    return "caller key in ZOOM_ACCESS_TOKEN: users.get_user('me'), users.get_user(id)"


def observe_own_mint(user_id):
    """Not the workaround and not unchanged (one line of code): the class
    attribute, set before a client is built, sends the library's own S2S mint
    to grantmux. Its mint is a POST with the parameters in the query string, no
    body and `Content-type: application/json`. What grantmux answers is
    recorded, not asserted: Zoom's answer to that exact request is unconfirmed."""
    ZoomAuthApiClient.oauth_base_url = f"{GRANTMUX}/oauth"
    del os.environ["ZOOM_ACCESS_TOKEN"], os.environ["ZOOM_ACCESS_TOKEN_EXPIRE"]
    client = ZoomApiClient(ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, api_endpoint=f"{GRANTMUX}/v2")
    try:
        ok = client.users.get_user("me").get("id") == user_id
        observe(f"with `oauth_base_url` set to grantmux (code), its own S2S mint through grantmux "
                f"{'works' if ok else 'gave a token for another user'}")
    except requests.HTTPError as e:
        observe(f"with `oauth_base_url` set to grantmux (code), its own S2S mint gets {answer(e.response)} "
                f"from grantmux: it POSTs `Content-type: application/json`, no body, parameters in the "
                f"query string (the sim answers the same; Zoom's answer is unconfirmed)")


if __name__ == "__main__":
    run("zoom-python-client", flow)
