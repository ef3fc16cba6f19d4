#!/usr/bin/env python3
"""Ground ingest cost (docs/BENCHMARKS.md, "Ground ingest: one event loop", issue 19).

Starts `sarlink-ground` as its own process (plaintext on loopback, JSON lines to a temporary
file, /metrics on a free port), then `sarlink-ground load --target ... --one-loop` with
DRONES drones at RATE Hz for SECONDS. Prints the ground's CPU (utime + stime from
/proc/PID/stat between the load tool's first and last progress lines, i.e. with every drone
connected and streaming), its peak VmRSS over the whole run, the record-to-output latency
quantiles from its /metrics, and whether every produced record is in the output exactly
once (distinct (node, stream, seq) against the load tool's "records produced").

With --honest-drone PATH (a sarlink-drone binary), one more drone (`--source sim`, node
`honest`) is started once the load streams, and the time from starting it to its first
record in the ground's output is printed (process start and its first measurement
included).

With --tls, a fleet CA is made in a temporary directory (`sarlink-ground ca init`), the
ground runs with `--tls DIR` and every simulated drone (and the honest one) gets a
certificate of its own: TLS 1.3 with mutual authentication, as in the field.

Usage (from the repository root, after `cargo build --release -p sarlink-ground`):
    python3 scripts/bench_ingest.py [--drones 1000] [--rate 10] [--seconds 30] [--tls]
        [--honest-drone target/release/sarlink-drone]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

from benchlib import free_port, wait_port, cpu_seconds, rss_bytes

BIN = os.path.join("target", "release", "sarlink-ground")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drones", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--honest-drone")
    ap.add_argument("--tls", action="store_true")
    args = ap.parse_args()
    ca = None
    security = ["--insecure"]
    if args.tls:
        ca = tempfile.mkdtemp(prefix="sarlink-ingest-ca-")
        for cmd in (["init"], ["issue", "ground"], ["issue", "honest"]):
            subprocess.run([BIN, "ca", "--dir", ca] + cmd, check=True,
                           stdout=subprocess.DEVNULL)
        security = ["--tls", ca]
    port, http = free_port(), free_port()
    out = tempfile.NamedTemporaryFile(prefix="sarlink-ingest-", suffix=".jsonl", delete=False)
    out.close()
    limit = str(args.drones + 16)
    ground = subprocess.Popen(
        [BIN, "--listen", f"127.0.0.1:{port}", *security, "--output-file", out.name,
         "--http", f"127.0.0.1:{http}", "--max-clients", limit,
         "--max-handshakes-per-addr", limit],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        peak = [rss_bytes(ground.pid)]
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], rss_bytes(ground.pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        cmd = [BIN, "load", "--target", f"127.0.0.1:{port}", "--one-loop",
               "--drones", str(args.drones), "--rate", str(args.rate),
               "--seconds", str(args.seconds), "--interval", str(args.interval)]
        if ca:
            cmd += ["--tls", ca]
        print("$", " ".join(cmd), flush=True)
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        marks = []
        produced = None
        honest = {}

        def watch_honest():
            pos = 0
            while not done.is_set() and "first" not in honest:
                with open(out.name, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                cut = chunk.rfind(b"\n") + 1
                pos += cut
                if b'"node":"honest"' in chunk[:cut]:
                    honest["first"] = time.time()
                time.sleep(0.01)

        drone = None
        for line in load.stdout:
            print("  load:", line.rstrip(), flush=True)
            if re.match(r"\s*\[\s*[\d.]+s\]", line):
                marks.append((time.time(), cpu_seconds(ground.pid)))
                if args.honest_drone and drone is None:
                    threading.Thread(target=watch_honest, daemon=True).start()
                    honest["start"] = time.time()
                    drone = subprocess.Popen(
                        [args.honest_drone, "--connect", f"127.0.0.1:{port}", "--node",
                         "honest", "--source", "sim", *security, "--quiet",
                         "--seconds", "5"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            m = re.search(r"records produced (\d+)", line)
            if m:
                produced = int(m.group(1))
        load.wait()
        # Let the last records reach the output before reading it.
        time.sleep(1.0)
        done.set()
        watcher.join()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
        q = dict(re.findall(
            r'sarlink_ground_record_latency_seconds\{quantile="([\d.]+)"\} ([\d.e+-]+)', metrics))
        seen, lines = set(), 0
        with open(out.name) as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("type") != "rssi" or not rec["node"].startswith("load-"):
                    continue
                lines += 1
                seen.add((rec["node"], rec["stream"], rec["seq"]))
        if len(marks) >= 2:
            (t0, c0), (t1, c1) = marks[0], marks[-1]
            cpu = (c1 - c0) / (t1 - t0) * 100
            rate = args.drones * args.rate
            print(f"ground cpu {cpu:.1f} % of one core over {t1 - t0:.1f} s "
                  f"= {cpu / 100 / rate * 1e6:.1f} us per record at {rate:.0f} records/s")
        print(f"ground peak rss {peak[0] / 1e6:.1f} MB")
        print("record-to-output latency: " + ", ".join(
            f"p{float(k) * 100:g} {float(v) * 1e3:.3f} ms" for k, v in sorted(q.items())))
        print(f"records produced {produced}, in the output {lines}, distinct {len(seen)}, "
              f"lost {None if produced is None else produced - len(seen)}, "
              f"duplicates {lines - len(seen)}")
        if drone is not None:
            drone.wait()
            first = honest.get("first")
            print("honest drone: " + (f"first record in the output {first - honest['start']:.3f} s "
                  "after starting it" if first else "no record in the output"))
        print(f"load tool exit {load.returncode}; load average {os.getloadavg()}")
    finally:
        ground.terminate()
        ground.wait()
        os.unlink(out.name)
        if ca:
            shutil.rmtree(ca)


if __name__ == "__main__":
    main()
