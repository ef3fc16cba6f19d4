#!/usr/bin/env python3
"""The ground's output files, read by the tools operators use: jq, pandas and Python's csv.

Runs a real ground (`target/debug`, or $SARLINK_BIN_DIR) and five simulated drones whose
names hold a comma, a double quote, CR, LF and a leading `=`, kills the ground with SIGKILL
midway and restarts it on the same file, then checks, for JSON lines and for CSV:

- every drone's records are there exactly once: seq 0..n, no gap, no repeat, across the
  restart, and the CSV header appears once, at the top;
- JSON lines: jq and pandas (default `read_json`, and with `dtype={"stream": str}`) give the
  exact (node, stream, seq) keys that Python's json module gives, and record and decision
  rows share field names;
- CSV: Python's csv module and pandas (`dtype=str, keep_default_na=False`) give identical
  rows, and every name reads back (after removing the one leading `'` of a neutralised
  cell) as the drone sent it, with no cell starting like a spreadsheet formula.
"""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SARLINK_BIN_DIR", os.path.join(ROOT, "target", "debug"))
NAMES = ["a,b", 'q"uote', "cr\rname", "lf\nname", "=SUM(A1:A9)"]
FORMULA = ("=", "+", "-", "@")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("SARLINK_")}


def start_ground(port, fmt, path):
    p = subprocess.Popen(
        [os.path.join(BIN, "sarlink-ground"), "--listen", f"127.0.0.1:{port}", "--quiet",
         "--output", fmt, "--output-file", path, "--insecure"],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"ground never listened on {port}")
            time.sleep(0.05)


def run(fmt, path):
    port = free_port()
    ground = start_ground(port, fmt, path)
    drones = [
        subprocess.Popen(
            [os.path.join(BIN, "sarlink-drone"), "--connect", f"127.0.0.1:{port}", "--quiet",
             "--node", name, "--rate", "20", "--sample-rate", "250k", "--insecure"],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in NAMES
    ]
    try:
        time.sleep(3)
        ground.send_signal(signal.SIGKILL)
        ground.wait()
        time.sleep(1)
        ground = start_ground(port, fmt, path)
        time.sleep(4)
        for d in drones:
            d.send_signal(signal.SIGTERM)
        for d in drones:
            assert d.wait(timeout=10) == 0, "a drone did not exit cleanly"
        time.sleep(0.5)
    finally:
        for d in drones:
            if d.poll() is None:
                d.kill()
        ground.send_signal(signal.SIGTERM)
        ground.wait(timeout=10)


def check_exactly_once(keys, what):
    by_node = {}
    for node, stream, seq in keys:
        by_node.setdefault((node, stream), []).append(seq)
    nodes = {n for n, _ in by_node}
    assert nodes == set(NAMES), f"{what}: nodes {sorted(nodes)!r}"
    for (node, stream), seqs in by_node.items():
        assert sorted(seqs) == list(range(len(seqs))), f"{what}: {node!r} {stream} has gaps or repeats"
        assert len(seqs) >= 20, f"{what}: only {len(seqs)} records from {node!r}"
    return sum(len(s) for s in by_node.values())


def check_jsonl(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    records = [r for r in rows if r["type"] == "rssi"]
    decisions = [r for r in rows if r["type"] == "decision"]
    assert decisions, "the drones' decisions are written"
    keys = [(r["node"], r["stream"], r["seq"]) for r in records]
    for r in records:
        assert isinstance(r["stream"], str) and int(r["stream"]) < 2**53, r["stream"]
        assert r["units"] == "dbfs"
        assert r["time"].endswith("Z") and r["time"][:4].isdigit()
    shared = set(records[0]) & set(decisions[0])
    assert {"type", "node", "timestamp_ns", "time", "source_id"} <= shared, shared
    n = check_exactly_once(keys, "jsonl")

    # jq: the same keys, exactly.
    out = subprocess.run(
        ["jq", "-c", 'select(.type == "rssi") | [.node, .stream, .seq]', path],
        check=True, capture_output=True, text=True).stdout
    jq_keys = [tuple(json.loads(line)) for line in out.splitlines()]
    assert jq_keys == keys, "jq reads other keys"

    # pandas: by default (numeric strings become numbers, exact below 2^53), and as text.
    df = pd.read_json(path, lines=True)
    df = df[df["type"] == "rssi"]
    assert [int(s) for s in df["stream"]] == [int(k[1]) for k in keys], "pandas rounds streams"
    assert list(df["seq"]) == [k[2] for k in keys]
    df = pd.read_json(path, lines=True, dtype={"stream": str})
    df = df[df["type"] == "rssi"]
    assert list(zip(df["node"], df["stream"], df["seq"])) == keys
    print(f"jsonl: {n} records exactly once across a kill -9; jq and pandas read exact keys")


def check_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["type", "node", "stream", "seq"], header
    assert all(r != header for r in body), "a second header row"
    df = pd.read_csv(io.StringIO(text, newline=""), dtype=str, keep_default_na=False)
    assert list(df.columns) == header
    assert df.values.tolist() == body, "pandas and csv disagree"
    keys = []
    for r in body:
        assert len(r) == len(header)
        for i in (header.index("node"), header.index("reason")):
            assert not r[i].startswith(FORMULA), f"a formula cell: {r[i]!r}"
        if r[0] == "rssi":
            node = r[1][1:] if r[1].startswith("'") else r[1]
            keys.append((node, r[2], int(r[3])))
    n = check_exactly_once(keys, "csv")
    print(f"csv: {n} records exactly once across a kill -9; csv and pandas read identical rows")


def main():
    for exe in ("sarlink-ground", "sarlink-drone"):
        if not os.path.exists(os.path.join(BIN, exe)):
            raise SystemExit(f"{exe} not found in {BIN}: build it first (cargo build)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.jsonl")
        run("jsonl", path)
        check_jsonl(path)
        path = os.path.join(tmp, "out.csv")
        run("csv", path)
        check_csv(path)
    print("outputs: OK")


if __name__ == "__main__":
    sys.exit(main())
