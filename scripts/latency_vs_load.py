#!/usr/bin/env python3
"""Latency against load for sarlink-ground: runs `sarlink-ground load` at several drone
counts (10 Hz each), then writes a Markdown table to stdout and an SVG chart.

Usage (from the repository root, after `cargo build --release -p sarlink-ground`):
    python3 scripts/latency_vs_load.py [--seconds 20] [--drones 10,50,100,200,400] [--svg docs/latency-vs-load.svg]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

BIN = os.path.join("target", "release", "sarlink-ground")


def run(drones, seconds, workdir):
    out = os.path.join(workdir, f"load_{drones}.json")
    cmd = [BIN, "load", "--drones", str(drones), "--seconds", str(seconds), "--interval", str(seconds), "--json", out]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def svg(points, path):
    """points: list of (records_per_sec, p50_ms, p99_ms)."""
    w, h, left, bottom, top, right = 640, 360, 60, 40, 20, 20
    xs = [p[0] for p in points]
    ymax = max(max(p[2] for p in points) * 1.15, 0.5)
    xmax = max(xs) * 1.05
    sx = lambda x: left + (w - left - right) * x / xmax
    sy = lambda y: h - bottom - (h - top - bottom) * y / ymax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{left}" y1="{h-bottom}" x2="{w-right}" y2="{h-bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h-bottom}" stroke="black"/>',
             f'<text x="{w/2}" y="{h-8}" text-anchor="middle">records per second into one ground (drones x 10 Hz)</text>',
             f'<text x="14" y="{h/2}" transform="rotate(-90 14 {h/2})" text-anchor="middle">record-to-output latency, ms</text>']
    for i in range(6):
        y = ymax * i / 5
        parts.append(f'<text x="{left-6}" y="{sy(y)+4}" text-anchor="end">{y:.2f}</text>')
        parts.append(f'<line x1="{left}" y1="{sy(y)}" x2="{w-right}" y2="{sy(y)}" stroke="#ddd"/>')
    for x in xs:
        parts.append(f'<text x="{sx(x)}" y="{h-bottom+16}" text-anchor="middle">{x:.0f}</text>')
    for idx, (color, label) in ((1, ("#1f77b4", "p50")), (2, ("#d62728", "p99"))):
        pts = " ".join(f"{sx(p[0]):.1f},{sy(p[idx]):.1f}" for p in points)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p in points:
            parts.append(f'<circle cx="{sx(p[0]):.1f}" cy="{sy(p[idx]):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<text x="{w-right-40}" y="{top+14*idx}" fill="{color}">{label}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--drones", default="10,50,100,200,400")
    ap.add_argument("--svg", default=os.path.join("docs", "latency-vs-load.svg"))
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release -p sarlink-ground` first")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in [int(x) for x in args.drones.split(",")]:
            r = run(n, args.seconds, d)
            lat = r["latency"]
            cpu = [i["ground_cpu_pct"] for i in r["intervals"]]
            rows.append((n, r["records_per_sec"], lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"], max(cpu) if cpu else 0.0, r["lost"], r["passed"]))
    print("| drones | records/s | p50 ms | p95 ms | p99 ms | max ms | ground CPU % | lost | pass |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n, rps, p50, p95, p99, mx, cpu, lost, ok in rows:
        print(f"| {n} | {rps:.0f} | {p50:.3f} | {p95:.3f} | {p99:.3f} | {mx:.3f} | {cpu:.1f} | {lost} | {'yes' if ok else 'no'} |")
    svg([(r[1], r[2], r[4]) for r in rows], args.svg)
    print(f"\n(chart written to {args.svg})", file=sys.stderr)


if __name__ == "__main__":
    main()
