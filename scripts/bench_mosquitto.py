#!/usr/bin/env python3
"""The broker reference for ground ingest (docs/BENCHMARKS.md, "Ground ingest", issue 19).

Starts a private mosquitto on a free loopback port (its own configuration, never the system
service), one `mosquitto_sub` receiving every message, and CLIENTS MQTT clients (one asyncio
process speaking MQTT 3.1.1 directly: CONNECT, then a QoS 0 PUBLISH of an 81-byte payload
every 1/RATE s, each client on its own phase). Prints mosquitto's CPU (utime + stime from
/proc/PID/stat over the steady window) and its peak VmRSS, as scripts/bench_ingest.py does for
the ground.

Usage: python3 scripts/bench_mosquitto.py [--clients 1000] [--rate 10] [--seconds 30]
"""
import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, cpu_seconds, rss_bytes

PAYLOAD = b"x" * 81


def remaining_length(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id):
    cid = client_id.encode()
    body = (b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid)
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + PAYLOAD
    return b"\x30" + remaining_length(len(body)) + body


async def client(i, port, rate, until, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(connect_packet(f"load-{i}"))
    await writer.drain()
    await reader.readexactly(4)  # CONNACK
    packet = publish_packet(f"load/{i}/rssi")
    period = 1.0 / rate
    loop = asyncio.get_running_loop()
    nxt = loop.time() + period * (i % 1000) / 1000
    while loop.time() < until:
        await asyncio.sleep(max(0.0, nxt - loop.time()))
        writer.write(packet)
        counts[0] += 1
        nxt += period
    writer.write(b"\xe0\x00")  # DISCONNECT
    await writer.drain()
    writer.close()


async def run_clients(n, port, rate, seconds, marks, pid):
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    counts = [0]
    tasks = [asyncio.create_task(client(i, port, rate, until, counts)) for i in range(n)]
    # The steady window: from a few seconds in (everyone connected) to a second before the end.
    await asyncio.sleep(min(5.0, seconds / 4))
    marks.append((time.time(), cpu_seconds(pid), counts[0]))
    await asyncio.sleep(max(0.0, until - loop.time() - 1.0))
    marks.append((time.time(), cpu_seconds(pid), counts[0]))
    await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(broker) or not shutil.which("mosquitto_sub"):
        sys.exit("mosquitto and mosquitto_sub are needed")
    port = free_port()
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"
               "persistence false\nlog_dest none\n")
    conf.close()
    mosq = subprocess.Popen([broker, "-c", conf.name], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sub = None
    try:
        time.sleep(0.5)
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t",
                                "load/#"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        peak = [rss_bytes(mosq.pid)]
        marks = []

        async def main_async():
            async def watch():
                while True:
                    peak[0] = max(peak[0], rss_bytes(mosq.pid))
                    await asyncio.sleep(0.2)
            w = asyncio.create_task(watch())
            await run_clients(args.clients, port, args.rate, args.seconds, marks, mosq.pid)
            w.cancel()

        asyncio.run(main_async())
        (t0, c0, n0), (t1, c1, n1) = marks
        cpu = (c1 - c0) / (t1 - t0) * 100
        rate = (n1 - n0) / (t1 - t0)
        print(f"mosquitto: {args.clients} clients x {args.rate} Hz, 81-byte payloads, one "
              f"subscriber to all: cpu {cpu:.1f} % of one core over {t1 - t0:.1f} s at "
              f"{rate:.0f} messages/s = {cpu / 100 / rate * 1e6:.1f} us per message; "
              f"peak rss {peak[0] / 1e6:.1f} MB; load average {os.getloadavg()}")
    finally:
        if sub:
            sub.terminate()
        mosq.terminate()
        mosq.wait()
        os.unlink(conf.name)


if __name__ == "__main__":
    main()
