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
import re
import sys
import traceback
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

GRANTMUX = os.environ["MATRIX_GRANTMUX_URL"]
GRANTMUX_ADMIN = os.environ["MATRIX_GRANTMUX_ADMIN_URL"]
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


@dataclass(frozen=True)
class TokenCalls:
    """Token calls by kind: code exchanges, refreshes, mints (S2S and client_credentials)."""
    exchange: int = 0
    refresh: int = 0
    mint: int = 0

    def __sub__(self, o):
        return TokenCalls(self.exchange - o.exchange, self.refresh - o.refresh, self.mint - o.mint)

    def __str__(self):
        return f"exchange {self.exchange}, refresh {self.refresh}, mint {self.mint}"


@dataclass(frozen=True)
class Side:
    """What Zoom (the sim's /_sim/stats) and grantmux (admin /metrics, /grants)
    say at one moment; a flow compares two of these around what it ran."""
    zoom_calls: TokenCalls
    grantmux_calls: TokenCalls
    served: dict  # (route, status) -> requests grantmux answered
    grants: list

    def served_since(self, before, route, status):
        return self.served.get((route, status), 0) - before.served.get((route, status), 0)


def grantmux_side():
    # Plain http on loopback: NO_PROXY keeps these off any proxy.
    stats = expect(requests.get(f"{SIM}/_sim/stats", timeout=TIMEOUT), 200, "GET /_sim/stats").json()
    t = stats["token_requests"]
    zoom = TokenCalls(t["authorization_code"], t["refresh_token"],
                      t["account_credentials"] + t.get("client_credentials", 0))
    metrics = expect(requests.get(f"{GRANTMUX_ADMIN}/metrics", timeout=TIMEOUT), 200, "GET admin /metrics").text
    kinds = {"exchange": 0, "refresh": 0, "mint": 0}
    for kind, n in re.findall(r'^grantmux_zoom_token_calls_total\{kind="(\w+)"[^}]*\} (\d+)', metrics, re.M):
        kind = "refresh" if kind == "adopt" else kind
        if kind not in kinds:
            raise Failure(f"grantmux reports token calls of an unknown kind {kind}")
        kinds[kind] += int(n)
    served = {(route, int(status)): int(n) for route, status, n in re.findall(
        r'^grantmux_requests_total\{route="(\w+)",status="(\d+)"\} (\d+)', metrics, re.M)}
    grants = expect(requests.get(f"{GRANTMUX_ADMIN}/grants", timeout=TIMEOUT), 200, "GET admin /grants").json()
    return Side(zoom, TokenCalls(**kinds), served, grants["grants"])


def run(distribution, flow, version=None):
    version = version or importlib.metadata.version(distribution)
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
