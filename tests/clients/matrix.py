"""Runs each library's flow of the client matrix and reports it.

Called by run.sh once grantmux and the sim are up and the MATRIX_* variables
are set. Prints one line per flow (`PASS  <library> <version> (<flow>)  <what
ran>` or `FAIL  ...  <reason>`), writes RESULTS.md, and exits 1 if any flow
failed. Standard library only: it runs on the system python3.
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
INTERCEPTED = "yes: environment variables only"

# What the interception flows are started with, on top of the runner's
# environment: grantmux's forward proxy, and its CA the way each runtime takes
# one (Node adds NODE_EXTRA_CA_CERTS to its roots; requests replaces its store
# with REQUESTS_CA_BUNDLE, so it gets the exported bundle).
INTERCEPT_ENV = {
    "node": lambda: {"HTTPS_PROXY": os.environ["MATRIX_FORWARD_PROXY"],
                     "https_proxy": os.environ["MATRIX_FORWARD_PROXY"],
                     "NODE_EXTRA_CA_CERTS": os.environ["MATRIX_CA_PEM"]},
    "python": lambda: {"HTTPS_PROXY": os.environ["MATRIX_FORWARD_PROXY"],
                       "https_proxy": os.environ["MATRIX_FORWARD_PROXY"],
                       "REQUESTS_CA_BUNDLE": os.environ["MATRIX_CA_BUNDLE"]},
}
INTERCEPT_SET = {
    "node": "`HTTPS_PROXY=<forward proxy>`, `NODE_EXTRA_CA_CERTS=<grantmux ca output>`",
    "python": "`HTTPS_PROXY=<forward proxy>`, `REQUESTS_CA_BUNDLE=<intercept.ca_bundle_export file>`",
}

# library, flow, language, script, what to set, works unchanged?, notes; `intercept`
# names the environment of INTERCEPT_ENV the flow runs with.
LIBRARIES = [
    dict(
        library="requests-oauthlib", flow="confidential client, PKCE", language="Python",
        script="python/requests_oauthlib_pkce.py",
        set="token URL `<grantmux>/oauth/token`, authorize URL `<grantmux>/oauth/authorize`, API base "
            "`<grantmux>/v2`; `OAUTHLIB_INSECURE_TRANSPORT=1` while grantmux is plain http",
        unchanged=UNCHANGED,
        notes="Authorization code with PKCE S256 (confidential client, Basic credentials), refresh, "
              "OAuth2Session API calls. oauthlib refuses `http://` URLs unless "
              "`OAUTHLIB_INSECURE_TRANSPORT` is set: an environment variable, not code.",
    ),
    dict(
        library="Authlib", flow="legacy adoption", language="Python", script="python/authlib_legacy.py",
        set="`token_endpoint` `<grantmux>/oauth/token`, API base `<grantmux>/v2`",
        unchanged=UNCHANGED,
        notes="Legacy adoption: a real refresh token from Zoom (the sim) refreshed through grantmux; "
              "its old access token gets Zoom's 401 code 124 first; a retried legacy refresh token "
              "gets the same grant; `token_endpoint_auth_method=\"client_secret_post\"` auto-refresh works.",
    ),
    dict(
        library="Authlib", flow="public client, PKCE", language="Python", script="python/authlib_public_pkce.py",
        set="`token_endpoint` `<grantmux>/oauth/token`, authorize URL `<grantmux>/oauth/authorize`, API base "
            "`<grantmux>/v2`; grantmux: `[[app]] client_id = \"<public client id>\"`, `public = true`",
        unchanged=UNCHANGED,
        notes="A public client (no secret): `token_endpoint_auth_method=\"none\"` sends `client_id` in the "
              "form and no credentials; the exchange carries the S256 `code_verifier`; its refresh too "
              "goes without a secret.",
    ),
    dict(
        library="zoomus", flow="Server-to-Server", language="Python", script="python/zoomus_s2s.py",
        set="`base_uri=<grantmux>/v2`, `oauth_uri=<grantmux>/oauth/token`",
        unchanged=UNCHANGED,
        notes="Server-to-Server (`account_credentials`, Basic). zoomus keeps `None` as its token "
              "when a token call fails, so failures show up as 401s on the API.",
    ),
    dict(
        library="pyzoom", flow="user OAuth, interception", language="Python", script="python/pyzoom_intercept.py",
        intercept="python", set=INTERCEPT_SET["python"], unchanged=INTERCEPTED,
        notes="Its token helpers (`pyzoom/oauth.py`: `request_tokens`, `refresh_tokens`) post to the "
              "hard-coded https://zoom.us/oauth/token; its `base_url` defaults to https://api.zoom.us/v2; "
              "both reach grantmux through the forward proxy. The authorize URL is the one its "
              "`oauth_wizard` builds. Its typed `create_meeting`/`get_meeting` fail against the sim "
              "(pydantic: the sim's meeting objects lack `status`, `start_url`, `h323_password`, "
              "`pstn_password`, `encrypted_password`, which Zoom sends), so the create runs through `client.raw`.",
    ),
    dict(
        library="zoom-python-client", flow="API, interception", language="Python",
        script="python/zoom_python_client_intercept.py", intercept="python",
        set=INTERCEPT_SET["python"] + "; `ZOOM_ACCESS_TOKEN=<[[caller]] key>`, "
            "`ZOOM_ACCESS_TOKEN_EXPIRE=<far future>`",
        unchanged="no — workaround: a [[caller]] key in `ZOOM_ACCESS_TOKEN`; its own S2S mint is "
                  "refused (see notes)",
        notes="Its token URL is the class attribute `ZoomAuthApiClient.oauth_base_url` "
              "(https://zoom.us/oauth) and reaches grantmux through the proxy, but its S2S mint POSTs "
              "`Content-type: application/json` with no body and the parameters in the query string: "
              "grantmux (like the sim) answers `unsupported_grant_type`.",
    ),
    dict(
        library="simple-oauth2", flow="authorization code", language="Node", script="node/simple_oauth2.mjs",
        set="`auth.tokenHost=<grantmux>` (Zoom's paths are its defaults); API base `<grantmux>/v2`",
        unchanged=UNCHANGED,
        notes="Code exchange (Basic), refresh, API calls with Node's fetch, `revokeAll()`; "
              "afterwards the access token gets 401 code 124 and the refresh token `invalid_grant`.",
    ),
    dict(
        library="simple-oauth2", flow="client_credentials", language="Node",
        script="node/simple_oauth2_client_credentials.mjs",
        set="`auth.tokenHost=<grantmux>`; API base `<grantmux>/v2`",
        unchanged=UNCHANGED,
        notes="`ClientCredentials`: an app token (no user), minted once by grantmux for the app; the "
              "sim takes app tokens on `POST /v2/im/chat/messages` only (201).",
    ),
    dict(
        library="@giorgosavgeris/passport-zoom-oauth2", flow="authorization code", language="Node",
        script="node/passport_zoom.mjs",
        set="`authorizationURL`, `tokenURL` (`<grantmux>/oauth/...`), `profileUrl=<grantmux>/v2/users/me`",
        unchanged=UNCHANGED,
        notes="The strategy's own exchange (node-oauth, `client_secret_post`, no `customHeaders`) and "
              "profile call, with passport's `state: true`. The option is `profileUrl`, not "
              "`profileURL`: the latter is ignored and the profile comes from api.zoom.us.",
    ),
    dict(
        library="@zoom/rivet", flow="user OAuth, S2S, chatbot, interception", language="Node",
        script="node/rivet_intercept.mjs", intercept="node", set=INTERCEPT_SET["node"], unchanged=INTERCEPTED,
        notes="No `baseUrl`, no `tokenStore` workaround: `OAUTH_BASE_URL = \"https://zoom.us\"` (a constant) and "
              "the default https://api.zoom.us/v2 reach grantmux through axios's CONNECT tunnel (axios ≥ 1.16.1; "
              "the version run is in the result). `getAuthorizationUrl` + `initRedirectCode` (as its receiver "
              "does), its own refresh (a token store reporting the token within its 60 s margin), "
              "`UsersS2SAuthClient`, `ChatbotClient` (`client_credentials`). `disableReceiver: true`, else it "
              "wants a webhooks secret and listens on 8080.",
    ),
    dict(
        library="curl", flow="listen.tls", language="CLI", script="python/curl_tls.py",
        set="`--resolve api.zoom.us:<tls port>:127.0.0.1` (the hosts file's part), "
            "`--cacert <grantmux ca output>`; a [[caller]] key as bearer",
        unchanged=UNCHANGED,
        notes="`listen.tls` answers as api.zoom.us by SNI; without `--cacert` curl refuses the "
              "certificate (exit 60).",
    ),
]


def run_one(lib, python, logs):
    script = os.path.join(HERE, lib["script"])
    cmd = [python, script] if script.endswith(".py") else ["node", script]
    log_path = os.path.join(logs, os.path.basename(script).rsplit(".", 1)[0] + ".log")
    env = {**os.environ, **INTERCEPT_ENV[lib["intercept"]]()} if lib.get("intercept") else None
    started = time.monotonic()
    code = None
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
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
               f"client_credentials token calls {calls.get('client_credentials', 0)}, "
               f"API calls {stats['api_requests']} (401 answers to unknown or expired tokens "
               f"{stats['api_401']}; the sim does not count its 401 to an app token on a user route), "
               f"`invalid_grant` answers {stats['invalid_grant']}")
    return summary, stats["invalid_grant"] == 0


def write_results(path, rows, zoom):
    out = [
        "# Client matrix results",
        "",
        "Written by `bash tests/clients/run.sh`: real client libraries, installed from their registries "
        "at the pinned versions (`requirements.txt`, `package-lock.json`), against a real `grantmux serve` "
        "in front of `grantmux sim`. `<grantmux>` is grantmux's proxy URL, e.g. `http://127.0.0.1:8080`. "
        "grantmux also runs `listen.forward_proxy` (`<forward proxy>`, e.g. `http://127.0.0.1:3128`) and "
        "`listen.tls` with the file store, so its interception CA is in the state folder and "
        "`grantmux ca` prints it, and `intercept.ca_bundle_export` writes the platform's roots plus that CA. "
        "The interception flows get those variables and nothing else: their token and API URLs stay "
        "https://zoom.us and https://api.zoom.us; every other flow runs with `HTTPS_PROXY` at a closed "
        "port, so a call to the real Zoom would fail.",
        "",
        "| library | flow | language | version | what to set | works unchanged? | result | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lib, res in rows:
        result = f"PASS: {res['ran']}" if res["ok"] else f"**FAIL**: {res['reason']}"
        out.append("| " + " | ".join(cell(c) for c in (
            f"`{lib['library']}`", lib["flow"], lib["language"], res["version"], lib["set"], lib["unchanged"],
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
        print(f"{word}  {lib['library']} {res['version']} ({lib['flow']})  {detail}", flush=True)
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
