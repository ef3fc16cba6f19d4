"""What the benchmark scripts share: free loopback ports, waiting for a listener, and a
process's (or thread's) CPU time and resident memory from /proc.

Imported by scripts/bench_ingest.py, bench_mosquitto.py and bench_mqtt.py, which run from
the repository root as `python3 scripts/NAME.py` (so this directory is on the path).
"""
import os
import socket
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, within=10):
    end = time.time() + within
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def _stat_cpu_seconds(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line.
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid, name):
    """CPU seconds of the threads of `pid` named `name` (their comm)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            total += _stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return total


def rss_bytes(pid):
    """Resident memory of `pid` now, bytes (0 once it is gone)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
