"""Runs each library's flow of the client matrix and reports it.

Called by run.sh once grantmux and the sim are up and the MATRIX_* variables
are set. Prints one line per library (`PASS  <library> <version>  <what ran>`
or `FAIL  <library> <version>  <reason>`), writes RESULTS.md, and exits 1 if
any library failed. Standard library only: it runs on the system python3.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 90  # seconds per library; a flow takes about one

UNCHANGED = "yes"
WORKAROUND = "no — workaround: tokenStore + [[caller]] key; full redirection needs interception (separate issue)"

# library, language, script, what to set, works unchanged?, notes
LIBRARIES = [
    dict(
        library="requests-oauthlib", language="Python", script="python/requests_oauthlib_pkce.py",
        set="token URL `<grantmux>/oauth/token`, authorize URL `<grantmux>/oauth/authorize`, API base "
            "`<grantmux>/v2`; `OAUTHLIB_INSECURE_TRANSPORT=1` while grantmux is plain http",
        unchanged=UNCHANGED,
        notes="Authorization code with PKCE S256 (confidential client, Basic credentials), refresh, "
              "OAuth2Session API calls. oauthlib refuses `http://` URLs unless "
              "`OAUTHLIB_INSECURE_TRANSPORT` is set: an environment variable, not code.",
    ),
    dict(
        library="Authlib", language="Python", script="python/authlib_legacy.py",
        set="`token_endpoint` `<grantmux>/oauth/token`, API base `<grantmux>/v2`",
        unchanged=UNCHANGED,
        notes="Legacy adoption: a real refresh token from Zoom (the sim) refreshed through grantmux; "
              "its old access token gets Zoom's 401 code 124 first; a retried legacy refresh token "
              "gets the same grant; `token_endpoint_auth_method=\"client_secret_post\"` auto-refresh works.",
    ),
    dict(
        library="zoomus", language="Python", script="python/zoomus_s2s.py",
        set="`base_uri=<grantmux>/v2`, `oauth_uri=<grantmux>/oauth/token`",
        unchanged=UNCHANGED,
        notes="Server-to-Server (`account_credentials`, Basic). zoomus keeps `None` as its token "
              "when a token call fails, so failures show up as 401s on the API.",
    ),
    dict(
        library="pyzoom", language="Python", script="python/pyzoom_callerkey.py",
        set="`base_url=<grantmux>/v2`, `access_token=<[[caller]] key>`",
        unchanged="no — workaround: [[caller]] key as `access_token`; its token helpers "
                  "(`pyzoom/oauth.py`) hard-code https://zoom.us/oauth/token",
        notes="API calls only; the key never expires, so pyzoom never refreshes. Its typed "
              "`create_meeting`/`get_meeting` fail against the sim (pydantic: `status`, `start_url`, "
              "`h323_password`, `pstn_password`, `encrypted_password` missing: the sim's meeting "
              "objects lack fields Zoom sends), so those two run through `client.raw`.",
    ),
    dict(
        library="zoom-python-client", language="Python", script="python/zoom_python_client_callerkey.py",
        set="`api_endpoint=<grantmux>/v2`; `ZOOM_ACCESS_TOKEN=<[[caller]] key>`, "
            "`ZOOM_ACCESS_TOKEN_EXPIRE=<far future>`",
        unchanged="no — workaround: [[caller]] key in `ZOOM_ACCESS_TOKEN`; its token URL is the "
                  "class attribute `ZoomAuthApiClient.oauth_base_url` (https://zoom.us/oauth)",
        notes="On a 401 it would mint at zoom.us; the key keeps it from trying.",
    ),
    dict(
        library="simple-oauth2", language="Node", script="node/simple_oauth2.mjs",
        set="`auth.tokenHost=<grantmux>` (Zoom's paths are its defaults); API base `<grantmux>/v2`",
        unchanged=UNCHANGED,
        notes="Code exchange (Basic), refresh, API calls with Node's fetch, `revokeAll()`; "
              "afterwards the access token gets 401 code 124 and the refresh token `invalid_grant`.",
    ),
    dict(
        library="@giorgosavgeris/passport-zoom-oauth2", language="Node", script="node/passport_zoom.mjs",
        set="`authorizationURL`, `tokenURL` (`<grantmux>/oauth/...`), `profileUrl=<grantmux>/v2/users/me`",
        unchanged=UNCHANGED,
        notes="The strategy's own exchange (node-oauth, `client_secret_post`, no `customHeaders`) and "
              "profile call, with passport's `state: true`. The option is `profileUrl`, not "
              "`profileURL`: the latter is ignored and the profile comes from api.zoom.us.",
    ),
    dict(
        library="@zoom/rivet", language="Node", script="node/rivet_callerkey.mjs",
        set="`baseUrl=<grantmux>/v2`, `tokenStore` returning the [[caller]] key, `disableReceiver: true`",
        unchanged=WORKAROUND,
        notes="`OAUTH_BASE_URL = \"https://zoom.us\"` is a constant in every module. Store shape "
              "`{accessToken, expirationTimeIso, scopes}`; Rivet mints at zoom.us 60 s before "
              "`expirationTimeIso`. Without `disableReceiver` it needs a webhooks secret and "
              "listens on 8080.",
    ),
]


def run_one(lib, python, logs):
    script = os.path.join(HERE, lib["script"])
    cmd = [python, script] if script.endswith(".py") else ["node", script]
    log_path = os.path.join(logs, os.path.basename(script).rsplit(".", 1)[0] + ".log")
    started = time.monotonic()
    code = None
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                  timeout=TIMEOUT, cwd=os.path.dirname(script))
            out, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            out += "\n" + json.dumps({"ok": False, "reason": f"timed out after {TIMEOUT} s"})
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = {"ok": False, "reason": f"no result line (exit {code}); see {log_path}"}
    result.setdefault("version", "?")
    result["seconds"] = time.monotonic() - started
    return result


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def zoom_side():
    """What the simulator (Zoom) saw over the whole matrix. Every library went
    through grantmux, so Zoom must never have refused a refresh token."""
    with urllib.request.urlopen(os.environ["MATRIX_SIM_URL"] + "/_sim/stats", timeout=10) as r:
        stats = json.load(r)
    calls = stats["token_requests"]
    summary = (f"Zoom (the sim) saw: code exchanges {calls['authorization_code']}, "
               f"refreshes {calls['refresh_token']}, S2S token calls {calls['account_credentials']}, "
               f"API calls {stats['api_requests']} (401 answers {stats['api_401']}), "
               f"`invalid_grant` answers {stats['invalid_grant']}")
    return summary, stats["invalid_grant"] == 0


def write_results(path, rows, zoom):
    out = [
        "# Client matrix results",
        "",
        "Written by `bash tests/clients/run.sh`: real client libraries, installed from their registries "
        "at the pinned versions (`requirements.txt`, `package-lock.json`), against a real `grantmux serve` "
        "in front of `grantmux sim`. `<grantmux>` is grantmux's proxy URL, e.g. `http://127.0.0.1:8080`.",
        "",
        "| library | language | version | what to set | works unchanged? | result | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for lib, res in rows:
        result = f"PASS: {res['ran']}" if res["ok"] else f"**FAIL**: {res['reason']}"
        out.append("| " + " | ".join(cell(c) for c in (
            f"`{lib['library']}`", lib["language"], res["version"], lib["set"], lib["unchanged"],
            result, lib["notes"] + (f" Observed: {res['observed']}." if res.get("observed") else ""))) + " |")
    out += ["", zoom + "."]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--results", required=True)
    args = ap.parse_args()

    rows = []
    for lib in LIBRARIES:
        res = run_one(lib, args.python, args.logs)
        rows.append((lib, res))
        word = "PASS" if res["ok"] else "FAIL"
        detail = res["ran"] if res["ok"] else res["reason"]
        print(f"{word}  {lib['library']} {res['version']}  {detail}", flush=True)
        if res.get("observed"):
            print(f"      observed: {res['observed']}", flush=True)
    zoom, zoom_ok = zoom_side()
    print(("" if zoom_ok else "FAIL  ") + zoom, flush=True)
    write_results(args.results, rows, zoom)
    failed = sum(1 for _, r in rows if not r["ok"]) + (0 if zoom_ok else 1)
    print(f"clients: {len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
