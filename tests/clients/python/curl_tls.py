"""curl against https://api.zoom.us through grantmux's `listen.tls` listener,
the /etc/hosts-style redirection: `--resolve api.zoom.us:PORT:127.0.0.1`
stands in for the hosts file, `--cacert` names the CA `grantmux ca` printed,
and a [[caller]] key is the bearer token. No proxy."""

import json
import os
import re
import subprocess

from common import Failure, caller_key, run

PORT = os.environ["MATRIX_TLS_PORT"]
CA = os.environ["MATRIX_CA_PEM"]


def curl(*args):
    """Runs curl with no proxy; returns (exit code, HTTP status, body)."""
    proc = subprocess.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "15",
         "--resolve", f"api.zoom.us:{PORT}:127.0.0.1", "--write-out", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=30)
    body, _, status = proc.stdout.rpartition("\n")
    return proc.returncode, status, body, proc.stderr.strip()


def version():
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=10).stdout
    return re.match(r"curl (\S+)", out).group(1)


def flow():
    url = f"https://api.zoom.us:{PORT}/v2/users/me"
    bearer = ["-H", f"Authorization: Bearer {caller_key('curl')}"]
    code, status, body, err = curl("--cacert", CA, *bearer, url)
    if code != 0 or status != "200":
        raise Failure(f"GET {url} with --cacert: curl exit {code}, HTTP {status} {body[:300]} {err}")
    me = json.loads(body)
    if not me.get("id"):
        raise Failure(f"/v2/users/me answered no id: {body[:300]}")
    # Without the CA, curl's own store does not know grantmux's leaf.
    code, status, _, err = curl(*bearer, url)
    if code != 60:
        raise Failure(f"without --cacert curl was not refused the certificate: exit {code}, HTTP {status} {err}")
    return f"--resolve + --cacert, caller key: GET https://api.zoom.us/v2/users/me 200 ({me['id']}); without --cacert exit 60"


if __name__ == "__main__":
    run("curl", flow, version=version())
