#!/usr/bin/env python3
"""A flight controller played by pymavlink (an independent MAVLink implementation), for
bins/ground/tests/mavlink.rs.

Usage: mavlink_vehicle.py UDP_PORT GROUND_BIN GROUND_PORT DRONE_NODE OUT_JSON

Listens on udpin:127.0.0.1:UDP_PORT (the drone runs with --mavlink udpout:127.0.0.1:UDP_PORT),
flies as an ArduCopter in GUIDED with a 3D fix, and runs the scenario: a tune accepted, a
mode change (LAND) that refuses a tune, a fence breach that refuses a tune 200 ms later, the
breach cleared and a tune accepted again, random bytes on the port, then silence. Commands
go through `sarlink-ground cmd`. Everything seen and done is written to OUT_JSON for the
Rust test to judge; this script asserts nothing itself.
"""

import json
import os
import random
import subprocess
import sys
import time

os.environ["MAVLINK20"] = "1"
from pymavlink import mavutil  # noqa: E402

udp_port, ground_bin, ground_port, node, out_path = sys.argv[1:6]

mav = mavutil.mavlink_connection(
    f"udpin:127.0.0.1:{udp_port}", source_system=7, source_component=1, dialect="ardupilotmega"
)
m = mavutil.mavlink
print("ready", flush=True)

state = {"mode": 4, "battery": 80, "breach": 0, "silent": False}
log = {
    "positions": [],
    "nvf": [],
    "texts": [],
    "drone_heartbeats": [],
    "cmds": {},
    "events": {},
}
due = {"hb": 0.0, "pos": 0.0, "slow": 0.0}
tick = [0]
last_heartbeat = [0.0]


def send_periodic(now):
    if state["silent"] or not mav.clients:
        return
    if now >= due["hb"]:
        due["hb"] = now + 1.0
        mav.mav.heartbeat_send(
            m.MAV_TYPE_QUADROTOR,
            m.MAV_AUTOPILOT_ARDUPILOTMEGA,
            m.MAV_MODE_FLAG_SAFETY_ARMED | m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
            state["mode"],
            m.MAV_STATE_ACTIVE,
        )
        last_heartbeat[0] = time.time()
    if now >= due["pos"]:
        due["pos"] = now + 0.1
        i = tick[0]
        tick[0] += 1
        lat, lon, alt, hdg = -338650000 + 97 * i, 1512090000 + 41 * i, 100000 + 250 * i, (700 * i) % 36000
        mav.mav.global_position_int_send(int(now * 1000) % 2**32, lat, lon, alt, 50000, 0, 0, 0, hdg)
        mav.mav.gps_raw_int_send(int(now * 1e6), m.GPS_FIX_TYPE_3D_FIX, lat, lon, alt, 80, 120, 500, hdg, 14)
        log["positions"].append([lat, lon, alt, hdg])
    if now >= due["slow"]:
        due["slow"] = now + 0.5
        mav.mav.sys_status_send(0, 0, 0, 200, 15800, 1200, state["battery"], 0, 0, 0, 0, 0, 0)
        mav.mav.fence_status_send(state["breach"], 1 if state["breach"] else 0, m.FENCE_BREACH_BOUNDARY, 0)


def pump(seconds, until=None):
    """Sends what is due and takes in what the drone sends, for `seconds` or until `until()`."""
    end = time.time() + seconds
    while time.time() < end:
        send_periodic(time.monotonic())
        msg = mav.recv_match(blocking=True, timeout=0.01)
        if msg is None:
            continue
        t = msg.get_type()
        now = time.time()
        if t == "NAMED_VALUE_FLOAT":
            log["nvf"].append([msg.name, msg.value, msg.time_boot_ms, now])
        elif t == "STATUSTEXT":
            log["texts"].append([msg.text, msg.severity, now])
        elif t == "HEARTBEAT":
            log["drone_heartbeats"].append(
                {
                    "type": msg.type,
                    "autopilot": msg.autopilot,
                    "system": msg.get_srcSystem(),
                    "component": msg.get_srcComponent(),
                    "t": now,
                }
            )
        if until is not None and until():
            return True
    return False


def text_after(t0, word):
    return lambda: any(word in x[0] and x[2] >= t0 for x in log["texts"])


def cmd(name, *words):
    t0 = time.time()
    p = subprocess.Popen(
        [ground_bin, "cmd", "--connect", f"127.0.0.1:{ground_port}", "--target", node, *words],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    while p.poll() is None:
        pump(0.02)
    log["cmds"][name] = {"code": p.returncode, "out": p.stdout.read(), "t0": t0, "t1": time.time()}


# The drone speaks first (its heartbeat), so the vehicle learns where it is.
pump(15, until=lambda: bool(mav.clients) and len(log["nvf"]) > 20)
pump(2)
cmd("tune_nominal", "tune", "406.03e6")

# A mode change: LAND is not on the allow-list.
state["mode"] = 9
due["hb"] = 0
t = time.time()
pump(3, until=text_after(t, "flight_mode"))
cmd("tune_land", "tune", "406.031e6")
state["mode"] = 4
due["hb"] = 0
t = time.time()
pump(3, until=text_after(t, "clear"))

# A fence breach; a tune 200 ms later must be refused.
state["breach"] = 1
t_breach = time.time()
mav.mav.fence_status_send(1, 1, m.FENCE_BREACH_BOUNDARY, 0)
log["events"]["breach"] = t_breach
pump(0.2 - (time.time() - t_breach))
cmd("tune_breach", "tune", "406.032e6")
pump(2, until=text_after(t_breach, "geofence"))
# Cleared: accepted again.
state["breach"] = 0
t_clear = time.time()
mav.mav.fence_status_send(0, 1, m.FENCE_BREACH_BOUNDARY, 0)
log["events"]["clear"] = t_clear
pump(0.3)
cmd("tune_cleared", "tune", "406.033e6")

# Random bytes on the port, then business as usual.
rng = random.Random(16)
for _ in range(300):
    mav.port.sendto(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 280))), next(iter(mav.clients)))
log["events"]["garbage_end"] = time.time()
pump(2.5)
cmd("tune_after_garbage", "tune", "406.034e6")

# Silence: no more heartbeats or anything else.
pump(1.0 - (time.time() - last_heartbeat[0]))
state["silent"] = True
log["events"]["silent"] = time.time()
log["events"]["last_heartbeat"] = last_heartbeat[0]
pump(8, until=text_after(last_heartbeat[0], "vehicle lost"))
cmd("tune_silent", "tune", "406.035e6")
pump(1.5)
log["events"]["end"] = time.time()

with open(out_path, "w") as f:
    json.dump(log, f)
print("done", flush=True)
