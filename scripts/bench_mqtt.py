#!/usr/bin/env python3
"""MQTT publishing cost and latency for sarlink-ground (docs/BENCHMARKS.md, "MQTT fan-out").

Starts a private mosquitto on a free loopback port (its own configuration, never the system
service) and a `mosquitto_sub` that stamps each record with its arrival time (`-F '%U %p'`).
Then, twice in a row with the same load (`sarlink-ground load --target`, DRONES drones at
10 Hz for SECONDS), a separately started ground: first without `--mqtt`, then with it.
Prints the ground's CPU (utime + stime from /proc over the load) in each run, the
difference, and the percentiles of (arrival at the subscriber - the record's timestamp).

Usage (from the repository root, after `cargo build --release -p sarlink-ground`):
    python3 scripts/bench_mqtt.py [--drones 100] [--seconds 30]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import free_port, wait_port, cpu_seconds, thread_cpu_seconds

BIN = os.path.join("target", "release", "sarlink-ground")


def run_ground(args, workdir, name, mqtt_url):
    port = free_port()
    # Plaintext on loopback (the ground refuses it without --insecure); every drone of the
    # load tool connects from 127.0.0.1 at once.
    limit = str(args.drones + 10)
    cmd = [BIN, "--listen", f"127.0.0.1:{port}", "--node", name, "--quiet", "--insecure",
           "--output-file", os.path.join(workdir, f"{name}.jsonl"), "--max-clients", limit,
           "--max-handshakes-per-addr", limit]
    metrics_port = free_port()
    cmd += ["--http", f"127.0.0.1:{metrics_port}"]
    if mqtt_url:
        cmd += ["--mqtt", mqtt_url]
    ground = subprocess.Popen(cmd, stderr=open(os.path.join(workdir, f"{name}.log"), "w"))
    wait_port(port)
    before = cpu_seconds(ground.pid)
    mqtt_before = thread_cpu_seconds(ground.pid, "sarlink-mqtt")
    t0 = time.time()
    load_json = os.path.join(workdir, f"load-{name}.json")
    subprocess.run([BIN, "load", "--target", f"127.0.0.1:{port}", "--drones", str(args.drones),
                    "--seconds", str(args.seconds), "--interval", str(args.seconds), "--json", load_json],
                   check=False, stdout=subprocess.DEVNULL)
    after = cpu_seconds(ground.pid)
    mqtt_after = thread_cpu_seconds(ground.pid, "sarlink-mqtt")
    wall = time.time() - t0
    # The ground's own record-to-output latency (its metric is published once a second).
    time.sleep(1.5)
    ground_latency = {}
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("sarlink_ground_record_latency_seconds{"):
            q = line.split('quantile="', 1)[1].split('"', 1)[0]
            ground_latency[q] = round(float(line.rsplit(" ", 1)[1]) * 1e3, 3)
    ground.send_signal(signal.SIGTERM)
    ground.wait(timeout=30)
    with open(load_json) as f:
        load = json.load(f)
    load["ground_record_to_output_ms"] = ground_latency
    load["mqtt_thread_cpu_pct"] = round((mqtt_after - mqtt_before) / wall * 100.0, 2)
    return (after - before) / wall * 100.0, wall, load


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drones", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    workdir = tempfile.mkdtemp(prefix="sarlink-bench-mqtt-")
    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
    broker = subprocess.Popen([mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    sub_path = os.path.join(workdir, "sub.txt")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                            "-t", "sarlink/+/+/rssi", "-F", "%U %p"], stdout=open(sub_path, "w"))
    time.sleep(1)
    try:
        cpu_off, wall_off, load_off = run_ground(args, workdir, "bench-off", None)
        cpu_on, wall_on, load_on = run_ground(args, workdir, "bench-on", f"mqtt://127.0.0.1:{port}")
        time.sleep(2)
    finally:
        sub.terminate()
        sub.wait()
        broker.terminate()
        broker.wait()
    lat = []
    seen = set()
    dups = 0
    with open(sub_path) as f:
        for line in f:
            at, _, payload = line.partition(" ")
            try:
                v = json.loads(payload)
            except ValueError:
                continue
            k = (v["node"], v["stream"], v["seq"])
            if k in seen:
                dups += 1
                continue
            seen.add(k)
            sec, _, frac = at.partition(".")
            at_ns = int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
            lat.append((at_ns - v["timestamp_ns"]) / 1e6)
    lat.sort()
    written = sum(1 for line in open(os.path.join(workdir, "bench-on.jsonl")) if '"type":"rssi"' in line)
    result = {
        "drones": args.drones,
        "seconds": args.seconds,
        "ground_cpu_pct_without_mqtt": round(cpu_off, 2),
        "ground_cpu_pct_with_mqtt": round(cpu_on, 2),
        "extra_cpu_pct": round(cpu_on - cpu_off, 2),
        "records_written_with_mqtt": written,
        "records_received_by_subscriber": len(seen),
        "duplicates_removed": dups,
        "latency_ms": {p: round(percentile(lat, p), 3) for p in (50, 90, 99, 99.9)} | {"max": round(lat[-1], 3) if lat else None},
        "load_without_mqtt": {k: load_off.get(k) for k in ("records_produced", "lost", "duplicates", "mqtt_thread_cpu_pct", "ground_record_to_output_ms")},
        "load_with_mqtt": {k: load_on.get(k) for k in ("records_produced", "lost", "duplicates", "mqtt_thread_cpu_pct", "ground_record_to_output_ms")},
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "workdir": workdir,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
