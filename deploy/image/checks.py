#!/usr/bin/env python3
"""Runs the image built by deploy/image/build.sh under Docker against the simulator.

Called by deploy/image/test.sh, which installs and starts the engine and builds the
image and the binary first:

    python3 deploy/image/checks.py --image grantmux:scratch --binary target/release/grantmux

The container runs as the sidecar layout runs it (deploy/kubernetes/sidecar/base and
single-replica): --read-only, --user 65532, the layout's proxy.toml in a folder mounted
read-only at /etc/grantmux, the secrets as environment variables (the layout's
secretKeyRef env, here from an --env-file), the file store on a named volume at
/var/lib/grantmux, and --memory 64m. --network host and 127.0.0.1 only: no container
bridge; the simulator runs on the host's loopback.

Every check prints one PASS or FAIL line; the last line is "image: N passed, M failed",
and the exit code is 1 if any failed. Containers, the volume, the simulator and the
temporary folder are removed at the end, whatever happened.

Python 3 standard library only.
"""

import argparse
import base64
import http.client
import json
import os
import re
import resource
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

LAYOUT_CONFIG = "deploy/kubernetes/sidecar/single-replica/proxy.toml"
DOCKERFILE = "deploy/Dockerfile"
SIM_CLIENT, SIM_SECRET = "sim-client", "sim-secret"
USER_GRANT, S2S_GRANT = "sim-client/user:sim-user", "sim-client/account:sim-account"
MEMORY_LIMIT = 64 * 1024 * 1024
CONNECTIONS = 1000
# Rounds of one request per connection, ROUND_SECONDS apart: under the default
# listen.header_read_timeout (10 s), which closes a keep-alive connection idle longer.
ROUNDS, ROUND_SECONDS = 5, 4.0
# `docker stop`'s own default: SIGTERM, then SIGKILL (exit 137) after 10 s.
STOP_GRACE_SECONDS = 10


class CheckFailed(Exception):
    """A check's condition did not hold; the message says what was seen."""


class Fatal(Exception):
    """Nothing after this can run (the container never came up)."""


# === helpers: processes, ports, HTTP ===


def run(*args, check=True):
    """Runs a command and returns its stdout; stderr is kept for the error."""
    done = subprocess.run(args, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise CheckFailed(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def free_port():
    """A port on 127.0.0.1 nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, headers=None, body=None):
    """One request on a new connection: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def wait_http(port, path, seconds, alive=lambda: True):
    """Polls GET path until it answers 200; False after `seconds` or once `alive` is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            if call(port, "GET", path)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def mib(n):
    return f"{n / 1048576:.1f} MiB"


# === the configuration, derived from the layout ===


def test_config(sim_port, proxy_port, admin_port):
    """The single-replica layout's proxy.toml with what must differ here replaced.

    Each replacement must hit, so a change to the layout fails this test rather than
    silently testing something else. Added: a static caller for the Server-to-Server
    grant, and rate limiting off (the simulator enforces none by default, and the
    connection check measures connections, not Zoom's per-second pacing).
    """
    with open(LAYOUT_CONFIG) as f:
        text = f.read()
    sim = f"http://127.0.0.1:{sim_port}"
    for old, new in [
        ('proxy = "127.0.0.1:8080"', f'proxy = "127.0.0.1:{proxy_port}"'),
        # Loopback only here: host networking would put 0.0.0.0 on every interface.
        ('admin = "0.0.0.0:9090"', f'admin = "127.0.0.1:{admin_port}"'),
        ('public_url = "http://127.0.0.1:8080"', f'public_url = "http://127.0.0.1:{proxy_port}"'),
        ('api_url = "https://api.zoom.us"', f'api_url = "{sim}"'),
        ('oauth_url = "https://zoom.us"', f'oauth_url = "{sim}"'),
        ('client_id = "your-zoom-client-id"', f'client_id = "{SIM_CLIENT}"'),
    ]:
        if old not in text:
            raise Fatal(f"{LAYOUT_CONFIG} no longer has {old!r}: update checks.py")
        text = text.replace(old, new)
    for kept in ('backend = "file"', 'path = "/var/lib/grantmux"', 'key_env = "GRANTMUX_STORE_KEY"'):
        if kept not in text:
            raise Fatal(f"{LAYOUT_CONFIG} no longer has {kept!r}: update checks.py")
    return text + (
        "\n[[caller]]\n"
        'name = "reports"\n'
        'key_env = "REPORTS_KEY"\n'
        f'grant = {{ client_id = "{SIM_CLIENT}", account_id = "sim-account" }}\n'
        "\n[rate_limit]\n"
        "enabled = false\n"
    )


def shutdown_grace_seconds(config_text):
    """proxy.shutdown_grace of the layout, in seconds (only "Ns" is expected there)."""
    m = re.search(r'^shutdown_grace\s*=\s*"(\d+)s"', config_text, re.M)
    return int(m.group(1)) if m else 30


def dockerfile_config():
    """USER, EXPOSE, ENTRYPOINT and CMD of deploy/Dockerfile's final stage."""
    with open(DOCKERFILE) as f:
        lines = f.read().split("\n")
    last_from = max(i for i, l in enumerate(lines) if l.startswith("FROM "))
    found = {}
    for line in lines[last_from:]:
        word, _, rest = line.partition(" ")
        if word in ("USER", "EXPOSE"):
            found[word] = rest.split()
        elif word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
    return found


# === the test bed: simulator, volume, containers ===


class Bed:
    """Everything the checks share, and its cleanup."""

    def __init__(self, image, binary):
        self.image, self.binary = image, binary
        self.tag = f"grantmux-image-test-{os.getpid()}"
        self.volume = f"{self.tag}-state"
        self.containers = []
        self.dir = tempfile.mkdtemp(prefix="grantmux-image-")
        self.sim_port, self.proxy_port, self.admin_port = free_port(), free_port(), free_port()
        self.reports_key = secrets.token_urlsafe(24)
        self.sim = None
        self.user_tokens = None
        self.stats_before_restart = None

    def start_sim(self):
        log = open(os.path.join(self.dir, "sim.log"), "w")
        self.sim = subprocess.Popen(
            [self.binary, "sim", "--listen", f"127.0.0.1:{self.sim_port}"],
            stdout=log, stderr=log,
        )
        if not wait_http(self.sim_port, "/_sim/stats", 20, lambda: self.sim.poll() is None):
            raise Fatal(f"the simulator did not answer on 127.0.0.1:{self.sim_port}")

    def sim_stats(self):
        return json.loads(call(self.sim_port, "GET", "/_sim/stats")[2])

    def write_config_and_secrets(self):
        """The ConfigMap's folder (readable by 65532) and the Secret's values."""
        self.config_dir = os.path.join(self.dir, "config")
        os.mkdir(self.config_dir)
        os.chmod(self.config_dir, 0o755)
        self.config_text = test_config(self.sim_port, self.proxy_port, self.admin_port)
        path = os.path.join(self.config_dir, "proxy.toml")
        with open(path, "w") as f:
            f.write(self.config_text)
        os.chmod(path, 0o644)
        self.env_file = os.path.join(self.dir, "secrets.env")
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"GRANTMUX_LOG=info\nZOOM_CLIENT_SECRET={SIM_SECRET}\n")
            f.write(f"GRANTMUX_STORE_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n")
            f.write(f"REPORTS_KEY={self.reports_key}\n")

    def run_container(self, suffix):
        """`docker run` as the sidecar layout runs grantmux; waits for /healthz."""
        name = f"{self.tag}-{suffix}"
        self.containers.append(name)
        run(
            "docker", "run", "--detach", "--name", name,
            "--read-only", "--user", "65532", "--network", "host", "--memory", "64m",
            "--volume", f"{self.config_dir}:/etc/grantmux:ro",
            "--volume", f"{self.volume}:/var/lib/grantmux",
            "--env-file", self.env_file,
            self.image,
        )
        running = lambda: self.inspect(name, "{{.State.Running}}") == "true"
        if not wait_http(self.admin_port, "/healthz", 30, running):
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            raise Fatal(f"{name} did not answer /healthz: {logs.stdout}{logs.stderr}")
        return name

    def inspect(self, name, fmt):
        return run("docker", "inspect", "-f", fmt, name).strip()

    def cleanup(self):
        for name in self.containers:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", self.volume], capture_output=True)
        if self.sim and self.sim.poll() is None:
            self.sim.terminate()
            self.sim.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# === 1,000 keep-alive connections ===


class Connections:
    """N keep-alive HTTP/1.1 connections, each with one request at a time."""

    def __init__(self, port, n, request):
        self.request = request
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setblocking(False)
            self.socks.append(s)

    def round(self, seconds=30):
        """One request on every connection; returns (statuses seen, connections closed)."""
        sel = selectors.DefaultSelector()
        bufs = {}
        for s in self.socks:
            s.sendall(self.request)
            bufs[s] = b""
            sel.register(s, selectors.EVENT_READ)
        statuses, closed = {}, 0
        deadline = time.monotonic() + seconds
        while bufs and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                chunk = s.recv(65536)
                bufs[s] += chunk
                status = complete_response(bufs[s])
                if chunk == b"" or status is not None:
                    sel.unregister(s)
                    del bufs[s]
                    if status is None:
                        closed += 1
                    else:
                        statuses[status] = statuses.get(status, 0) + 1
        sel.close()
        return statuses, closed + len(bufs)

    def open_count(self):
        """Connections the server has not closed (a peek finds no EOF)."""
        n = 0
        for s in self.socks:
            try:
                if s.recv(1, socket.MSG_PEEK) != b"":
                    n += 1
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        for s in self.socks:
            s.close()


def complete_response(buf):
    """The status code once buf holds a whole response, else None."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if "content-length" in fields:
        return status if len(body) >= int(fields["content-length"]) else None
    if fields.get("transfer-encoding", "").lower() == "chunked":
        return status if body.endswith(b"0\r\n\r\n") else None
    return status


def cgroup_memory(container_id):
    """(usage, peak, anonymous) bytes of the container's memory cgroup, v1 or v2."""
    for base in (f"/sys/fs/cgroup/memory/docker/{container_id}",
                 f"/sys/fs/cgroup/docker/{container_id}",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"):
        stat = os.path.join(base, "memory.stat")
        if not os.path.exists(stat):
            continue
        fields = dict(line.split() for line in open(stat))
        if os.path.exists(os.path.join(base, "memory.usage_in_bytes")):
            usage = int(open(os.path.join(base, "memory.usage_in_bytes")).read())
            peak = int(open(os.path.join(base, "memory.max_usage_in_bytes")).read())
            anon = int(fields.get("total_rss", fields.get("rss", 0)))
        else:
            usage = int(open(os.path.join(base, "memory.current")).read())
            peak_file = os.path.join(base, "memory.peak")
            peak = int(open(peak_file).read()) if os.path.exists(peak_file) else usage
            anon = int(fields.get("anon", 0))
        return usage, peak, anon
    return None


# === the checks ===


def check_image_config(bed):
    want = dockerfile_config()
    cfg = json.loads(run("docker", "image", "inspect", "-f", "{{json .Config}}", bed.image))
    got = {
        "USER": [cfg.get("User", "")],
        "EXPOSE": sorted(cfg.get("ExposedPorts", {}).keys()),
        "ENTRYPOINT": cfg.get("Entrypoint"),
        "CMD": cfg.get("Cmd"),
    }
    want["EXPOSE"] = sorted(p if "/" in p else f"{p}/tcp" for p in want["EXPOSE"])
    if got != want:
        raise CheckFailed(f"image {got} but {DOCKERFILE} {want}")
    return f"USER {got['USER'][0]}, EXPOSE {' '.join(want['EXPOSE'])}, ENTRYPOINT and CMD as {DOCKERFILE}"


def check_started(bed):
    name = bed.run_container("first")
    bed.first = name
    pid = bed.inspect(name, "{{.State.Pid}}")
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
    uid = status["Uid"].split()[0]
    ns_pid = status.get("NSpid", "").split()[-1:]
    readonly = bed.inspect(name, "{{.HostConfig.ReadonlyRootfs}}")
    limit = int(bed.inspect(name, "{{.HostConfig.Memory}}"))
    if uid != "65532" or ns_pid != ["1"] or readonly != "true" or limit != MEMORY_LIMIT:
        raise CheckFailed(f"uid {uid}, pid in container {ns_pid}, read-only {readonly}, memory {limit}")
    return f"{name}: PID 1, uid 65532, read-only root, memory limit 64 MiB, /healthz 200"


def check_s2s_call(bed):
    status, _, body = call(bed.proxy_port, "GET", "/v2/users/me", bearer(bed.reports_key))
    if status != 200:
        raise CheckFailed(f"GET /v2/users/me with the static caller key: {status} {body[:200]!r}")
    return f"static caller -> grantmux -> sim: GET /v2/users/me 200 ({json.loads(body)['id']})"


def check_code_exchange(bed):
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": SIM_CLIENT, "redirect_uri": "http://localhost/cb"})
    status, headers, _ = call(bed.sim_port, "GET", f"/oauth/authorize?{query}")
    location = headers.get("Location") or headers.get("location", "")
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query).get("code", [None])[0]
    if status != 302 or not code:
        raise CheckFailed(f"sim /oauth/authorize: {status} {location!r}")
    form = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"})
    basic = base64.b64encode(f"{SIM_CLIENT}:{SIM_SECRET}".encode()).decode()
    status, _, body = call(bed.proxy_port, "POST", "/oauth/token", {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded"}, form)
    if status != 200:
        raise CheckFailed(f"code exchange through grantmux: {status} {body[:200]!r}")
    bed.user_tokens = json.loads(body)
    status, _, body = call(bed.proxy_port, "GET", "/v2/users/me", bearer(bed.user_tokens["access_token"]))
    if status != 200:
        raise CheckFailed(f"GET /v2/users/me with the exchanged token: {status} {body[:200]!r}")
    return "code exchange through grantmux 200, then GET /v2/users/me with its virtual token 200"


def check_json_logs(bed):
    logs = subprocess.run(["docker", "logs", bed.first], capture_output=True, text=True)
    streams = {"stdout": logs.stdout.splitlines(), "stderr": logs.stderr.splitlines()}
    bad = []
    for stream, lines in streams.items():
        for line in lines:
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append((stream, line))
            except ValueError:
                bad.append((stream, line))
    total = len(streams["stdout"])
    if bad or total == 0 or "grantmux started" not in logs.stdout or streams["stderr"]:
        raise CheckFailed(
            f"{total} lines on stdout, {len(streams['stderr'])} on stderr, not JSON: {bad[:3]}"
        )
    # `serve` logs to stdout (the container log), errors included: nothing on stderr.
    return f"every line of `docker logs` is a JSON object, {total} on stdout, none on stderr"


def check_connections(bed):
    cid = bed.inspect(bed.first, "{{.Id}}")
    before = cgroup_memory(cid)
    request = (f"GET /v2/users/me HTTP/1.1\r\nHost: 127.0.0.1:{bed.proxy_port}\r\n"
               f"Authorization: Bearer {bed.reports_key}\r\n\r\n").encode()
    bed.conns = Connections(bed.proxy_port, CONNECTIONS, request)
    peak_anon, stats, upstream = 0, "", 0
    for i in range(ROUNDS):
        started = time.monotonic()
        statuses, closed = bed.conns.round()
        if statuses != {200: CONNECTIONS} or closed:
            raise CheckFailed(f"round {i + 1}: statuses {statuses}, {closed} connections closed")
        mem = cgroup_memory(cid)
        peak_anon = max(peak_anon, mem[2]) if mem else 0
        if i == ROUNDS // 2:
            stats = run("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", bed.first).strip()
            upstream = established("dport", bed.sim_port)
        time.sleep(max(0.0, ROUND_SECONDS - (time.monotonic() - started)))
    still_open = bed.conns.open_count()
    accepted = established("sport", bed.proxy_port)
    running = bed.inspect(bed.first, "{{.State.Running}}")
    oom = bed.inspect(bed.first, "{{.State.OOMKilled}}")
    after = cgroup_memory(cid)
    if still_open != CONNECTIONS or running != "true" or oom != "false":
        raise CheckFailed(f"open {still_open}/{CONNECTIONS}, running {running}, OOMKilled {oom}")
    detail = f"docker stats: {stats}"
    if before and after:
        detail += (f"; cgroup: anonymous {mib(before[2])} before, peak {mib(peak_anon)} with the "
                   f"connections; usage peak {mib(after[1])} (page cache included) of 64 MiB")
    return (f"{CONNECTIONS} keep-alive connections, {ROUNDS} rounds of {CONNECTIONS} calls "
            f"(all 200) over {ROUNDS * ROUND_SECONDS:.0f} s; {accepted} established on the proxy "
            f"port, {upstream} from grantmux to the sim; running, not OOM-killed; {detail}")


def established(side, port):
    """Established TCP connections whose `side` ("sport" or "dport") is port, as `ss`
    counts them. With host networking the container's sockets are the host's."""
    out = run("ss", "-Htn", "state", "established", f"( {side} = :{port} )", check=False)
    return len(out.splitlines())


def stop_within_grace(bed, name):
    """`docker stop` (10 s, then SIGKILL): (seconds taken, exit code, OOM-killed)."""
    started = time.monotonic()
    run("docker", "stop", "--time", str(STOP_GRACE_SECONDS), name)
    took = time.monotonic() - started
    return took, bed.inspect(name, "{{.State.ExitCode}}"), bed.inspect(name, "{{.State.OOMKilled}}")


def check_stop(bed):
    bed.stats_before_restart = bed.sim_stats()["token_requests"]
    took, code, oom = stop_within_grace(bed, bed.first)
    conns = getattr(bed, "conns", None)
    closed = CONNECTIONS - conns.open_count() if conns else 0
    if conns:
        conns.close()
    if code != "0" or took >= STOP_GRACE_SECONDS:
        raise CheckFailed(f"docker stop took {took:.1f} s, exit code {code}, OOMKilled {oom}")
    grace = shutdown_grace_seconds(bed.config_text)
    return (f"docker stop with {CONNECTIONS} idle keep-alive connections open: exit 0 in "
            f"{took:.1f} s (docker's grace {STOP_GRACE_SECONDS} s, proxy.shutdown_grace {grace} s); "
            f"{closed} connections closed by grantmux")


def check_restart(bed):
    name = bed.run_container("second")
    bed.second = name
    grants = json.loads(call(bed.admin_port, "GET", "/grants")[2])["grants"]
    ids = sorted(g["id"] for g in grants)
    status, _, _ = call(bed.proxy_port, "GET", "/v2/users/me", bearer(bed.user_tokens["access_token"]))
    s2s, _, _ = call(bed.proxy_port, "GET", "/v2/users/me", bearer(bed.reports_key))
    after = bed.sim_stats()["token_requests"]
    files = store_files(bed)
    if ids != sorted([S2S_GRANT, USER_GRANT]) or status != 200 or s2s != 200 or after != bed.stats_before_restart:
        raise CheckFailed(f"grants {ids}, old user token {status}, static caller {s2s}, "
                          f"sim token calls {bed.stats_before_restart} -> {after}")
    return (f"{name} on the same volume: /grants lists {', '.join(ids)}; the virtual token "
            f"issued before the restart answers 200; no token call at the sim "
            f"({json.dumps(after, separators=(',', ':'))}); volume holds {files}")


def store_files(bed):
    """The store folder's files on the volume, with their owner."""
    mount = run("docker", "volume", "inspect", "-f", "{{.Mountpoint}}", bed.volume).strip()
    names = sorted(os.listdir(mount))
    owner = os.stat(mount).st_uid
    return f"{', '.join(names)} (folder owned by uid {owner})"


def check_second_stop(bed):
    took, code, oom = stop_within_grace(bed, bed.second)
    if code != "0" or took >= STOP_GRACE_SECONDS:
        raise CheckFailed(f"docker stop took {took:.1f} s, exit code {code}, OOMKilled {oom}")
    return f"the restarted container: docker stop, exit 0 in {took:.1f} s"


CHECKS = [
    ("image config equals deploy/Dockerfile's", check_image_config),
    ("starts as the sidecar layout runs it", check_started),
    ("traffic: Server-to-Server static caller", check_s2s_call),
    ("traffic: code exchange and user call", check_code_exchange),
    ("logs are JSON lines", check_json_logs),
    (f"{CONNECTIONS} open connections under --memory 64m", check_connections),
    ("docker stop ends with exit 0 within the grace period", check_stop),
    ("a restarted container keeps its grants", check_restart),
    ("docker stop of the restarted container", check_second_stop),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--binary", required=True)
    args = parser.parse_args()
    # One socket per connection, plus the rest: raise the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    bed = Bed(args.image, args.binary)
    passed = failed = 0
    try:
        bed.start_sim()
        bed.write_config_and_secrets()
        for title, check in CHECKS:
            try:
                print(f"PASS: {title}: {check(bed)}", flush=True)
                passed += 1
            except Fatal:
                raise
            except Exception as e:  # CheckFailed, or an answer of an unexpected shape
                print(f"FAIL: {title}: {type(e).__name__}: {e}", flush=True)
                failed += 1
    except Fatal as e:
        print(f"FAIL: {e}", flush=True)
        failed += 1
    finally:
        bed.cleanup()
    print(f"image: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
