#!/usr/bin/env python3
"""RSS of one proxy idle and with 1,000 open keep-alive connections, alone.

Run with: python3 benches/conn_rss.py [grantmux|nginx] [BINARY]

The memory half of compare.py, in seconds rather than minutes: the proxy on CPU 0
(one worker) in front of examples/bench_upstream, its RSS after one request, after a
2 s wrk run, with 1,000 connections opened as compare.py opens them (one request each,
answered, left open), and after a second request on each of those at once. Builds
nothing: run `cargo build --release --bin grantmux --example bench_upstream` first.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

REL = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release")


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "grantmux"
    if len(sys.argv) > 2:
        compare.GRANTMUX = sys.argv[2]
    upstream = subprocess.Popen(
        ["taskset", "-c", "1", os.path.join(REL, "examples", "bench_upstream"),
         f"127.0.0.1:{compare.UP_PORT}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = compare.Target(which, tempfile.mkdtemp())
    try:
        compare.wait_port(compare.UP_PORT)
        target.start()
        if compare.get_once(target.port) != 200:
            raise RuntimeError(f"{which} did not answer 200")
        time.sleep(0.5)
        idle = compare.rss_kib(target.pid) / 1024
        compare.wrk(target.port, 2)
        time.sleep(0.5)
        warm = compare.rss_kib(target.pid) / 1024
        socks = compare.hold_connections(target.port, 1000)
        time.sleep(0.5)
        held = compare.rss_kib(target.pid) / 1024
        for s in socks:
            s.sendall(compare.request())
        compare.answered(socks)
        time.sleep(0.5)
        burst = compare.rss_kib(target.pid) / 1024
        for s in socks:
            s.close()
        print(f"{which}: idle {idle:.1f} MiB; after wrk {warm:.1f}; with 1,000 connections "
              f"{held:.1f} ({(held - warm) * 1024 / 1000:.1f} KiB each); after a request on "
              f"each at once {burst:.1f}")
    finally:
        target.stop()
        upstream.kill()


if __name__ == "__main__":
    main()
