#!/usr/bin/env python3
"""Run with: benches/compare.sh (which installs the tools and builds first).

grantmux side by side with nginx and HAProxy doing the same job (reverse proxy
that sets an Authorization header, keep-alive both sides), and a direct
connection, all in front of one fast upstream (examples/bench_upstream.rs).
Proxies run on one core with one worker/thread; load and upstream share the
other core. Several rounds in shuffled order; medians and spread.

Writes a Markdown report to the path given as the first argument.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
GRANTMUX = os.path.join(REL, "grantmux")
UPSTREAM = os.path.join(REL, "examples", "bench_upstream")

# THREADS=2: each proxy with two workers (grantmux's runtime threads, nginx's
# worker processes, HAProxy's threads), proxies, load and upstream sharing both
# cores, as a sidecar given more than one core would.
THREADS = int(os.environ.get("THREADS", "1"))
PROXY_CPU = os.environ.get("PROXY_CPU", "0" if THREADS == 1 else "0,1")
LOAD_CPU = os.environ.get("LOAD_CPU", "1" if THREADS == 1 else "0,1")
# LONG=1 (compare.sh --long): 5 rounds and 20 s fixed-rate phases, long enough for
# the p99 verdicts to hold from one run to the next.
LONG = os.environ.get("LONG") == "1"
ROUNDS = int(os.environ.get("ROUNDS", "5" if LONG else "3"))
SAT_SECS = int(os.environ.get("SAT_SECS", "8"))
LAT_SECS = int(os.environ.get("LAT_SECS", "20" if LONG else "8"))
RATES = [int(r) for r in os.environ.get("RATES", "1000,5000").split(",")]
CONNS = int(os.environ.get("CONNS", "64"))
OPEN_CONNS = 1000
OHA_NEW = True  # oha >= 1.5 spells JSON output `--output-format json`; set in main()

UP_PORT, GMX_PORT, ADMIN_PORT, NGINX_PORT, HAPROXY_PORT = 19901, 19080, 19090, 19081, 19082
CALLER_KEY = "bench-caller-key-0123456789"
REAL_TOKEN = "Bearer bench-real-access-token"
PATH = "/v2/users/me"
TARGETS = ["direct", "grantmux", "nginx", "haproxy"]
PORTS = {"direct": UP_PORT, "grantmux": GMX_PORT, "nginx": NGINX_PORT, "haproxy": HAPROXY_PORT}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------

def pinned(cpu, argv):
    return ["taskset", "-c", cpu] + argv


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def port_taken(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def get_once(port):
    """One keep-alive-less GET through the target; returns the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(close=True))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def request(close=False):
    conn = "Connection: close\r\n" if close else ""
    return (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CALLER_KEY}\r\n"
            f"{conn}\r\n").encode()


def tree_pids(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def rss_kib(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+)", f.read())
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def cpu_secs(pid):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / tick


class Target:
    def __init__(self, name, workdir):
        self.name, self.port, self.dir, self.proc = name, PORTS[name], workdir, None

    def start(self):
        argv, env = self.command()
        if argv is None:
            return
        if port_taken(self.port):
            raise RuntimeError(f"port {self.port} is taken before {self.name} starts")
        out = open(os.path.join(self.dir, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(pinned(PROXY_CPU, argv), env=env, stdout=out, stderr=out,
                                     start_new_session=True)
        wait_port(self.port)

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        env = dict(os.environ)
        if self.name == "direct":
            return None, None
        if self.name == "grantmux":
            path = os.path.join(self.dir, "grantmux.toml")
            with open(path, "w") as f:
                f.write(GRANTMUX_CONF)
            env.update(SIM_SECRET="sim-secret", BENCH_KEY=CALLER_KEY,
                       GRANTMUX_WORKER_THREADS=str(THREADS))
            return [GRANTMUX, "serve", "--config", path], env
        if self.name == "nginx":
            path = os.path.join(self.dir, "nginx.conf")
            with open(path, "w") as f:
                f.write(NGINX_CONF.replace("@DIR@", self.dir))
            return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", self.dir], env
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(HAPROXY_CONF)
        return [shutil.which("haproxy") or "/usr/sbin/haproxy", "-f", path, "-db"], env


GRANTMUX_CONF = f"""
[listen]
proxy = "127.0.0.1:{GMX_PORT}"
admin = "127.0.0.1:{ADMIN_PORT}"
public_url = "http://127.0.0.1:{GMX_PORT}"
[zoom]
api_url = "http://127.0.0.1:{UP_PORT}"
oauth_url = "http://127.0.0.1:{UP_PORT}"
[[app]]
client_id = "sim-client"
client_secret_env = "SIM_SECRET"
[store]
backend = "memory"
[[caller]]
name = "bench"
key_env = "BENCH_KEY"
grant = {{ client_id = "sim-client", account_id = "sim-account" }}
# nginx and HAProxy shape nothing: this measures proxying alone. (With shaping on,
# one account's calls are paced at Zoom's rate, 30 a second for Light on Pro.)
[rate_limit]
enabled = false
"""

NGINX_CONF = f"""
worker_processes {THREADS};
daemon off;
pid @DIR@/nginx.pid;
error_log @DIR@/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path @DIR@/nginx-body;
    proxy_temp_path @DIR@/nginx-proxy;
    fastcgi_temp_path @DIR@/nginx-fastcgi;
    uwsgi_temp_path @DIR@/nginx-uwsgi;
    scgi_temp_path @DIR@/nginx-scgi;
    upstream zoom {{
        server 127.0.0.1:{UP_PORT};
        keepalive 256;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{NGINX_PORT} backlog=4096;
        location / {{
            proxy_pass http://zoom;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "{REAL_TOKEN}";
        }}
    }}
}}
"""

HAPROXY_CONF = f"""
global
    nbthread {THREADS}
    maxconn 8000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:{HAPROXY_PORT}
    default_backend zoom
backend zoom
    http-request set-header Authorization "{REAL_TOKEN}"
    server up 127.0.0.1:{UP_PORT}
"""


# --- load ------------------------------------------------------------------

def url(port):
    return f"http://127.0.0.1:{port}{PATH}"


def wrk(port, secs):
    out = subprocess.run(
        pinned(LOAD_CPU, ["wrk", "-t1", f"-c{CONNS}", f"-d{secs}s",
                          "-H", f"Authorization: Bearer {CALLER_KEY}", url(port)]),
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errs = re.search(r"Socket errors: (.*)", out)
    return rps, bad, errs.group(1) if errs else ""


def oha(argv_tail, secs):
    fmt = ["--output-format", "json"] if OHA_NEW else ["--json"]
    argv = ["oha", "--no-tui", "-z", f"{secs}s"] + fmt + argv_tail
    out = subprocess.run(pinned(LOAD_CPU, argv), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def fixed_rate(port, rate, secs):
    r = oha(["-q", str(rate), "-c", str(CONNS), "--latency-correction",
             "-H", f"Authorization: Bearer {CALLER_KEY}", url(port)], secs)
    pct = r["latencyPercentiles"]
    codes = r.get("statusCodeDistribution", {})
    total = sum(codes.values())
    ok = codes.get("200", 0)
    # oha cancels the requests still in flight when -z runs out: not failures.
    errors = sum(n for e, n in r.get("errorDistribution", {}).items() if "deadline" not in e)
    return {"p50": pct["p50"] * 1e3, "p99": pct["p99"] * 1e3, "p99.9": pct["p99.9"] * 1e3,
            "requests": total, "failed": total - ok + errors,
            "errors": r.get("errorDistribution", {})}


def hold_connections(port, n):
    """Opens n keep-alive connections, one request each, and leaves them open."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request())
        socks.append(s)
    answered(socks)
    return socks


def answered(socks):
    """Reads one JSON answer from each socket."""
    for s in socks:
        data = b""
        while not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk


def virtual_refresh_rate(secs):
    """Rate of grant_type=refresh_token with a virtual refresh token, at saturation."""
    basic = "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"  # sim-client:sim-secret
    form = "application/x-www-form-urlencoded"
    out = subprocess.run(
        ["curl", "-sf", "-H", f"Authorization: {basic}", "-H", f"Content-Type: {form}",
         "-d", "grant_type=authorization_code&code=bench&redirect_uri=http://localhost/cb",
         f"http://127.0.0.1:{GMX_PORT}/oauth/token"], capture_output=True, text=True, check=True)
    refresh = json.loads(out.stdout)["refresh_token"]
    r = oha(["-c", str(CONNS), "-m", "POST", "-H", f"Authorization: {basic}", "-T", form,
             "-d", f"grant_type=refresh_token&refresh_token={refresh}",
             f"http://127.0.0.1:{GMX_PORT}/oauth/token"], secs)
    codes = r.get("statusCodeDistribution", {})
    return r["summary"]["requestsPerSec"] * codes.get("200", 0) / max(1, sum(codes.values()))


# --- one measurement -------------------------------------------------------

def measure(name, workdir):
    t = Target(name, workdir)
    t.start()
    try:
        status = get_once(t.port)
        if status != 200:
            raise RuntimeError(f"{name} answered {status}")
        row = {}
        if t.pid:
            time.sleep(0.5)
            row["idle_rss"] = rss_kib(t.pid) / 1024
        wrk(t.port, 2)  # warm-up: pools, caches
        c0 = cpu_secs(t.pid) if t.pid else 0
        w0 = time.time()
        row["rps"], row["sat_non2xx"], row["sat_errors"] = wrk(t.port, SAT_SECS)
        if t.pid:
            row["sat_busy"] = 100 * (cpu_secs(t.pid) - c0) / (time.time() - w0)
        for rate in RATES:
            c0 = cpu_secs(t.pid) if t.pid else 0
            r = fixed_rate(t.port, rate, LAT_SECS)
            if t.pid:
                r["cpu_ms_per_1k"] = 1e6 * (cpu_secs(t.pid) - c0) / max(1, r["requests"])
            row[rate] = r
        if t.pid:
            socks = hold_connections(t.port, OPEN_CONNS)
            time.sleep(0.5)
            row["conn_rss"] = rss_kib(t.pid) / 1024
            for s in socks:
                s.close()
        if name == "grantmux":
            row["vrefresh"] = virtual_refresh_rate(5)
        return row
    finally:
        t.stop()


# --- report ----------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def ratio(a, b):
    return f"{a / b:.2f}×" if a == a and b == b and b else "n/a"


def report(rounds, path, refresh_md, notes):
    def vals(target, key, sub=None):
        out = []
        for r in rounds:
            v = r[target].get(key)
            if sub is not None and v is not None:
                v = v.get(sub)
            if v is not None:
                out.append(v)
        return out

    def added(target, rate, p):
        return [r[target][rate][p] - r["direct"][rate][p] for r in rounds]

    proxies = ["grantmux", "nginx", "haproxy"]
    lines = ["| figure | direct | grantmux | nginx | HAProxy | grantmux ÷ nginx | grantmux ÷ HAProxy "
             "| grantmux ÷ direct | §6 target |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(label, series, fmt, target="", direct=True):
        cells = [spread(series[t], fmt) if (t != "direct" or direct) else "—" for t in TARGETS]
        g, n, h, d = (med(series[t]) for t in TARGETS[1:] + ["direct"])
        verdict = target(g, n) if callable(target) else target
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {ratio(g, n)} | {ratio(g, h)} | {ratio(g, d) if direct else '—'} | {verdict} |")

    def meets(ok):
        return "meets" if ok else "**falls short**"

    row("throughput at saturation, req/s (wrk, 64 conns)", {t: vals(t, "rps") for t in TARGETS},
        "{:.0f}", lambda g, n: f"≥ 1.0× nginx: {meets(g >= n)}")
    row("proxy core busy during saturation, %", {t: vals(t, "sat_busy") for t in TARGETS}, "{:.0f}",
        direct=False)
    for rate in RATES:
        for p in ["p50", "p99", "p99.9"]:
            series = {t: vals(t, rate, p) for t in TARGETS}
            row(f"{rate} req/s: {p} latency, ms", series, "{:.3f}")
        for p in ["p50", "p99", "p99.9"]:
            series = {t: added(t, rate, p) for t in proxies}
            series["direct"] = []
            tgt = (lambda g, n: f"≤ nginx: {meets(g <= n)}") if p == "p99" else ""
            row(f"{rate} req/s: added {p}, ms", series, "{:.3f}", tgt, direct=False)
        row(f"{rate} req/s: proxy CPU per 1,000 requests, ms",
            {t: vals(t, rate, "cpu_ms_per_1k") for t in TARGETS}, "{:.1f}",
            lambda g, n: f"≤ nginx: {meets(g <= n)}", direct=False)
        row(f"{rate} req/s: failed requests", {t: vals(t, rate, "failed") for t in TARGETS}, "{:.0f}")
    row("idle RSS, MiB", {t: vals(t, "idle_rss") for t in TARGETS}, "{:.1f}",
        lambda g, n: f"≤ 15 MiB: {meets(g <= 15)}", direct=False)
    row(f"RSS with {OPEN_CONNS} open client connections, MiB",
        {t: vals(t, "conn_rss") for t in TARGETS}, "{:.1f}",
        lambda g, n: f"≤ 1.5× nginx: {meets(g <= 1.5 * n)}", direct=False)
    vref = vals("grantmux", "vrefresh")

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"Run {now} on {machine()}.", "",
           f"{len(rounds)} rounds in shuffled order; each cell is the median (min–max over rounds). "
           f"Proxies pinned to CPU {PROXY_CPU} with {THREADS} worker(s)/thread(s); wrk/oha and the upstream on "
           f"CPU {LOAD_CPU}. Saturation: wrk -t1 -c{CONNS} for {SAT_SECS}s. Fixed rates: oha -c{CONNS} "
           f"--latency-correction for {LAT_SECS}s. Added latency = the proxy's percentile minus the "
           "direct connection's in the same round. nginx's RSS is its master and worker together.",
           "", *lines, "",
           f"Virtual refresh (`POST /oauth/token grant_type=refresh_token`), grantmux alone on its core, "
           f"oha -c{CONNS}: **{spread(vref, '{:.0f}')} answers/s** (§6: ≥ 20k/s: "
           f"{meets(med(vref) >= 20000)}).", ""]
    if notes:
        out += ["Notes: " + notes, ""]
    if refresh_md:
        out += ["Refresh figures (`cargo bench --bench refresh`):", "", refresh_md.strip(), ""]
    with open(path, "w") as f:
        f.write("\n".join(out))
    with open(path + ".json", "w") as f:
        json.dump(rounds, f, indent=1, default=str)
    print("\n".join(out))


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    ver = lambda argv: subprocess.run(argv, capture_output=True, text=True).stderr.strip().splitlines()[0]
    nginx = ver(["nginx", "-v"]).replace("nginx version: ", "")
    haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_v = (wrk_v.stdout + wrk_v.stderr).strip().splitlines()[0].split(" [")[0]
    return (f"{os.cpu_count()} × {cpu}, {mem:.0f} GiB RAM, {os.uname().sysname} "
            f"{os.uname().release}; {nginx}, {haproxy.split(' - ')[0]}, {oha_v}, {wrk_v}")


def other_load():
    """Load average while nothing of ours runs: a sign of a shared machine."""
    return os.getloadavg()[0]


def main():
    global OHA_NEW
    OHA_NEW = "--output-format" in subprocess.run(["oha", "--help"], capture_output=True,
                                                   text=True).stdout
    path = sys.argv[1]
    refresh_md = open(sys.argv[2]).read() if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else ""
    workdir = tempfile.mkdtemp(prefix="grantmux-compare-")
    if port_taken(UP_PORT):
        raise RuntimeError(f"port {UP_PORT} is taken: stop whatever listens there first")
    up = subprocess.Popen(pinned(LOAD_CPU, [UPSTREAM, f"127.0.0.1:{UP_PORT}"]),
                          stdout=subprocess.DEVNULL, start_new_session=True)
    load_before = other_load()
    rounds = []
    try:
        wait_port(UP_PORT)
        time.sleep(0.2)
        if up.poll() is not None:
            raise RuntimeError(f"the upstream exited at start: is port {UP_PORT} taken?")
        for i in range(ROUNDS):
            order = TARGETS[:]
            random.shuffle(order)
            log(f"round {i + 1}/{ROUNDS}: {' '.join(order)}")
            rounds.append({name: measure(name, workdir) for name in order})
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait()
    notes = ""
    if load_before > 0.5:
        notes = (f"the 1-minute load average was {load_before:.1f} when the run started, so other "
                 "work shared the machine; compare ratios, not absolute figures.")
    report(rounds, path, refresh_md, notes)


if __name__ == "__main__":
    main()
