"""What every Python flow of the client matrix shares.

The runner (tests/clients/run.sh) sets the MATRIX_* variables: where grantmux
and the simulator listen, the simulator app's credentials, and the static
caller keys of grantmux's [[caller]] entries. Each flow script calls
`run(distribution, flow)`: `flow()` returns a short description of what ran,
and the last line on stdout is one JSON object the runner reads.
"""

import importlib.metadata
import json
import os
import sys
import traceback
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

GRANTMUX = os.environ["MATRIX_GRANTMUX_URL"]
SIM = os.environ["MATRIX_SIM_URL"]
CLIENT_ID = os.environ["MATRIX_CLIENT_ID"]
CLIENT_SECRET = os.environ["MATRIX_CLIENT_SECRET"]
ACCOUNT_ID = os.environ["MATRIX_ACCOUNT_ID"]
# Registered nowhere and never fetched: the code is read from the Location
# header that points at it.
REDIRECT_URI = "http://127.0.0.1:9/callback"
TIMEOUT = 15


class Failure(Exception):
    """A step did not get the answer it needed; the message says which and what came."""


def caller_key(name):
    return os.environ[f"MATRIX_CALLER_KEY_{name.upper().replace('-', '_')}"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


_observed = []


def observe(note):
    """Something seen and reported with the result, neither a pass nor a failure."""
    log(f"observed: {note}")
    _observed.append(note)


def answer(resp):
    """`HTTP 400 {"reason":...}`: what a server said, short enough for one line."""
    body = resp.text.strip().replace("\n", " ")
    if len(body) > 300:
        body = body[:300] + "..."
    return f"HTTP {resp.status_code} {body}"


def expect(resp, status, what):
    if resp.status_code != status:
        raise Failure(f"{what}: wanted HTTP {status}, got {answer(resp)}")
    return resp


def authorize(url, redirect_uri=REDIRECT_URI, state=None):
    """Follows /oauth/authorize redirects by hand, from `url` (grantmux's or the
    sim's) until one points at `redirect_uri`, which is not fetched. Returns
    (code, that callback URL, the hosts visited)."""
    hops = []
    for _ in range(5):
        resp = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        hops.append(urlsplit(url).netloc)
        if resp.status_code not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
            raise Failure(f"GET {urlsplit(url).path} at {hops[-1]}: wanted a redirect, got {answer(resp)}")
        location = urljoin(url, resp.headers["Location"])
        if location.startswith(redirect_uri):
            query = parse_qs(urlsplit(location).query)
            if "code" not in query:
                raise Failure(f"authorize redirected to the callback without a code: {location}")
            if state is not None and query.get("state") != [state]:
                raise Failure(f"authorize lost the state: sent {state!r}, got {query.get('state')}")
            return query["code"][0], location, hops
        url = location
    raise Failure(f"authorize: more than 5 redirects: {hops}")


def run(distribution, flow):
    version = importlib.metadata.version(distribution)
    result = {"library": distribution, "version": version}
    try:
        result.update(ok=True, ran=flow())
    except Exception as e:  # noqa: BLE001 - every failure becomes one line
        traceback.print_exc(file=sys.stderr)
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, Failure) else str(e)
        result.update(ok=False, reason=reason.replace("\n", " "))
    if _observed:
        result["observed"] = "; ".join(_observed)
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)
