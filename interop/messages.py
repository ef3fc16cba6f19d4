#!/usr/bin/env python3
"""Interoperability of sarlink-schema with an independent implementation.

Python's msgpack, lz4.frame and xxhash stand in for a peer written from the spec alone
(`wire-v1.md`, sections 2 and 3):

(a) Rust writes a frame of every message type and every cmd op
    (`cargo run -p sarlink-schema --example interop -- write`); Python checks each frame's
    header and XXH64 checksum, decompresses it when flagged, and checks the payload against
    the values it expects: key order, types (float 32 not 64, bin not str, most compact
    integers) and values, byte for byte against its own canonical packing.
(b) Python writes frames in the forms the spec lets senders use (keys in another order,
    wider integers, float 64, extra keys, some compressed) and a few invalid ones; the Rust
    example (`-- read`) decodes them and prints each message re-encoded canonically (or the
    error and the field it names), which Python compares with what it meant to send.

Run from anywhere; exits non-zero on any mismatch.
"""

import os
import struct
import subprocess
import sys

import lz4.frame
import msgpack
import xxhash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = ["cargo", "run", "-q", "--locked", "-p", "sarlink-schema", "--example", "interop", "--"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL {what}")
    return cond


# ---------------------------------------------------------------------------------------
# Expected messages, in the spec's key order (Python dicts keep insertion order).

def batch_record(i):
    rec = {
        "timestamp_ns": 1_764_000_000_000_000_000 + i * 100_000_000 + (i * 7919 % 1000),
        "rssi_dbm": -80.0 + (i % 37) * 0.125,
        "frequency_hz": 406_025_000,
        "source_id": i % 3,
        "quality_score": i * 13 % 101,
    }
    if i % 4 != 3:
        rec["snr_db"] = 10.0 + (i % 11) * 0.5
    if i % 5 != 4:
        rec["noise_dbm"] = -90.0 - (i % 5) * 0.25
    return rec


GOLDEN_RECORD = {
    "timestamp_ns": 1764000000000000000,
    "rssi_dbm": -71.5,
    "frequency_hz": 406025000,
    "source_id": 0,
    "quality_score": 87,
    "snr_db": 18.25,
    "noise_dbm": -89.75,
}

BEACON_RECORD = {
    "timestamp_ns": 1764000000100000000, "rssi_dbm": -60.25, "frequency_hz": 148525000,
    "source_id": 0, "quality_score": 40, "snr_db": 4.5, "noise_dbm": -66.0,
    # Protocol 1.1 beacon keys, in the spec's order after noise_dbm.
    "detected": True, "pulses": 1, "pulse_dbm": -52.5, "pulse_width_us": 20125,
    "pulse_start_ns": 1764000000042000000, "pulse_interval_ms": 1003, "last_pulse_dbm": -52.5,
    "last_pulse_age_ms": 38, "burst": False, "offset_hz": -6875.5, "clip_fraction": 0.0,
    # Protocol 1.1 geotag: the vehicle's position when the record was made.
    "lat_e7": -338651234, "lon_e7": 1512099876, "alt_m": 152.5, "heading_deg": 271.25,
}

# Protocol 1.1 keys saying how the value was made: smoothed with this weight, from stale data.
MADE_RECORD = {
    "timestamp_ns": 1764000000300000000, "rssi_dbm": -61.0, "frequency_hz": 148525000,
    "source_id": 0, "quality_score": 40, "noise_dbm": -66.0, "smoothing": 0.25, "stale": True,
}

HELD_RECORD = {
    "timestamp_ns": 1764000000200000000, "rssi_dbm": -60.25, "frequency_hz": 148525000,
    "source_id": 0, "quality_score": 40, "noise_dbm": -66.0,
    "detected": True, "pulses": 0, "last_pulse_dbm": -52.5, "last_pulse_age_ms": 138,
    "clip_fraction": 0.25,
}

EXPECTED = {
    "hello": {
        "type": "hello", "proto": "sarlink", "version": [1, 0], "role": "drone",
        "node": "drone-1", "stream": 0x123456789ABCDEF0, "compression": ["lz4"],
        "max_message": 16777216, "nonce": b"0123456789abcdef", "rssi_units": "dbfs",
    },
    "challenge": {"type": "challenge", "nonce": b"\xa5" * 16},
    "auth": {"type": "auth", "mac": b"\x3c" * 32},
    "welcome": {
        "type": "welcome", "version": [1, 0], "node": "ground-station", "compression": ["lz4"],
        "max_message": 1048576, "resume_seq": 1000, "mac": b"\x7e" * 32, "rssi_units": "dbfs",
    },
    "reject": {"type": "reject", "code": "auth", "reason": "bad mac"},
    "rssi": {"type": "rssi", "seq": 42, "samples": [GOLDEN_RECORD]},
    "rssi_batch": {"type": "rssi", "seq": 1000, "samples": [batch_record(i) for i in range(64)]},
    "rssi_beacon": {"type": "rssi", "seq": 7, "samples": [BEACON_RECORD, HELD_RECORD, MADE_RECORD]},
    "rx": {"type": "rx", "seq": 1064},
    "ping": {"type": "ping", "seq": 7, "t_ns": 1700000000123456789},
    "pong": {"type": "pong", "seq": 7, "t_ns": 1700000000123456789},
    "cmd_tune": {"type": "cmd", "id": 1, "op": "tune", "target": "drone-1", "frequency_hz": 121500000},
    "cmd_gain": {"type": "cmd", "id": 2, "op": "gain", "gain_db": 28.5},
    "cmd_gain_auto": {"type": "cmd", "id": 3, "op": "gain_auto"},
    "cmd_rate": {"type": "cmd", "id": 4, "op": "rate", "hz": 2.5},
    "cmd_stream": {"type": "cmd", "id": 70000, "op": "stream", "on": True},
    "ack_ok": {"type": "ack", "id": 1, "ok": True},
    "ack_refused": {"type": "ack", "id": 2, "ok": False, "code": "range", "reason": "gain above 49.6 dB"},
    "status": {
        "type": "status", "t_ns": -5, "cpu_pct": 37.5, "mem_bytes": 5000000000, "temp_c": 61.25,
        "level": "degraded", "disabled": ["spectrum", "raw_iq"], "dropped": 3, "queued": 300,
        "rate_hz": 10.0, "source": "stale", "data_age_ms": 1500,
        "alerts": ["link_rtt:critical", "cpu:warning"],
    },
    "decision": {
        "type": "decision", "t_ns": 1764000000600000000, "source_id": 1, "fallback": True,
        "reason": "drone link lost", "score_ground": 0.75,
    },
    "bye": {"type": "bye", "code": "shutdown", "reason": "operator"},
}

ALL_TYPES = {"hello", "challenge", "auth", "welcome", "reject", "rssi", "rx", "ping", "pong",
             "cmd", "ack", "status", "decision", "bye"}
ALL_OPS = {"tune", "gain", "gain_auto", "rate", "stream"}


def canonical(msg):
    """The spec's canonical form, packed by msgpack: compact ints, float 32, bin for bytes."""
    return msgpack.packb(msg, use_bin_type=True, use_single_float=True)


# ---------------------------------------------------------------------------------------
# Frames (spec section 2), written and read with lz4.frame and xxhash only.

def make_frame(payload, compress=False):
    if compress:
        body = lz4.frame.compress(payload)
        header = struct.pack(">BII", 0x01, len(body), len(payload))
    else:
        body = payload
        header = struct.pack(">BII", 0x00, len(body), 0)
    head_and_body = header + body
    return head_and_body + struct.pack(">Q", xxhash.xxh64_intdigest(head_and_body, seed=0))


def read_frame(frame, label):
    """Checks a frame and returns its payload (decompressed), or None."""
    if not check(len(frame) >= 17, f"{label}: frame too short"):
        return None
    flags, wire_len, raw_len = struct.unpack(">BII", frame[:9])
    check(flags & 0xF0 == 0, f"{label}: reserved flag bits set")
    check(wire_len > 0, f"{label}: wire_len 0")
    check(len(frame) == 9 + wire_len + 8, f"{label}: frame length {len(frame)} != 17 + {wire_len}")
    (checksum,) = struct.unpack(">Q", frame[9 + wire_len:9 + wire_len + 8])
    check(checksum == xxhash.xxh64_intdigest(frame[:9 + wire_len], seed=0), f"{label}: checksum")
    body = frame[9:9 + wire_len]
    if flags & 0x01:
        check((flags >> 1) & 0x07 == 0, f"{label}: codec is not LZ4 frame")
        payload = lz4.frame.decompress(body)
        check(len(payload) == raw_len, f"{label}: raw_len {raw_len} != {len(payload)}")
        return payload
    check(flags == 0 and raw_len == 0, f"{label}: plain frame with flags {flags} raw_len {raw_len}")
    return body


def float_markers(buf):
    """Every float marker in a MessagePack buffer (a minimal walker, independent of msgpack)."""
    found = []

    def walk(pos):
        b = buf[pos]
        pos += 1
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            return pos
        if 0xA0 <= b <= 0xBF:
            return pos + (b & 0x1F)
        if 0x90 <= b <= 0x9F or 0x80 <= b <= 0x8F:
            n = (b & 0x0F) * (2 if b <= 0x8F else 1)
            for _ in range(n):
                pos = walk(pos)
            return pos
        if b in (0xCA, 0xCB):
            found.append(b)
            return pos + (4 if b == 0xCA else 8)
        fixed = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
        if b in fixed:
            return pos + fixed[b]
        if b in (0xC4, 0xD9):
            return pos + 1 + buf[pos]
        if b in (0xC5, 0xDA):
            return pos + 2 + struct.unpack(">H", buf[pos:pos + 2])[0]
        if b in (0xC6, 0xDB):
            return pos + 4 + struct.unpack(">I", buf[pos:pos + 4])[0]
        if b in (0xDC, 0xDD, 0xDE, 0xDF):
            width = 2 if b in (0xDC, 0xDE) else 4
            n = int.from_bytes(buf[pos:pos + width], "big") * (2 if b >= 0xDE else 1)
            pos += width
            for _ in range(n):
                pos = walk(pos)
            return pos
        raise ValueError(f"unexpected marker {b:#x}")

    end = walk(0)
    if end != len(buf):
        raise ValueError("trailing bytes")
    return found


def f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def same_values(got, want, path=""):
    """Deep comparison with Python types: bytes vs str, bool vs int, floats rounded to f32."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or list(got) != list(want):
            return f"{path}: keys {list(got) if isinstance(got, dict) else type(got)} != {list(want)}"
        for k in want:
            err = same_values(got[k], want[k], f"{path}.{k}")
            if err:
                return err
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            err = same_values(g, w, f"{path}[{i}]")
            if err:
                return err
        return None
    if type(got) is not type(want):
        return f"{path}: type {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, float):
        return None if got == f32(want) else f"{path}: {got} != {f32(want)}"
    return None if got == want else f"{path}: {got!r} != {want!r}"


def run_example(mode, stdin=None):
    proc = subprocess.run(EXAMPLE + [mode], cwd=ROOT, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        sys.exit(f"the Rust example failed ({mode}): exit {proc.returncode}")
    return proc.stdout


# ---------------------------------------------------------------------------------------
# (a) Rust writes, Python reads.

def rust_writes():
    print("(a) frames written by Rust, read by Python")
    seen_types, seen_ops, compressed = set(), set(), 0
    lines = run_example("write").splitlines()
    labels = [line.split(" ", 1)[0] for line in lines]
    check(sorted(labels) == sorted(EXPECTED), f"labels {labels}")
    for line in lines:
        label, frame_hex = line.split(" ", 1)
        frame = bytes.fromhex(frame_hex)
        if frame[0] & 0x01:
            compressed += 1
        payload = read_frame(frame, label)
        if payload is None or label not in EXPECTED:
            continue
        want = EXPECTED[label]
        got = msgpack.unpackb(payload, raw=False)
        err = same_values(got, want)
        check(err is None, f"{label}: {err}")
        check(all(m == 0xCA for m in float_markers(payload)), f"{label}: a float is not float 32")
        check(payload == canonical(want), f"{label}: not the canonical bytes\n"
              f"    rust   {payload.hex()}\n    python {canonical(want).hex()}")
        seen_types.add(got.get("type"))
        if got.get("type") == "cmd":
            seen_ops.add(got.get("op"))
        print(f"  ok {label:14} {len(frame):5} bytes{' (lz4)' if frame[0] & 1 else ''}")
    check(seen_types == ALL_TYPES, f"types seen {sorted(seen_types)}")
    check(seen_ops == ALL_OPS, f"ops seen {sorted(seen_ops)}")
    check(compressed >= 1, "no compressed frame from Rust")
    return len(lines)


# ---------------------------------------------------------------------------------------
# (b) Python writes, Rust reads. A small packer for the forms msgpack.packb never writes.

class Wide(int):
    """An integer written in its 64-bit form (uint 64 or int 64)."""


class Int8(int):
    """An integer written as int 8."""


class F32(float):
    """A float written as float 32 (plain Python floats are written as float 64)."""


def pack(v, out):
    if isinstance(v, bool):
        out += b"\xc3" if v else b"\xc2"
    elif v is None:
        out += b"\xc0"
    elif isinstance(v, Wide):
        out += struct.pack(">Bq", 0xD3, v) if v < 0 else struct.pack(">BQ", 0xCF, v)
    elif isinstance(v, Int8):
        out += struct.pack(">Bb", 0xD0, v)
    elif isinstance(v, int):
        out += msgpack.packb(v)
    elif isinstance(v, F32):
        out += struct.pack(">Bf", 0xCA, v)
    elif isinstance(v, float):
        out += struct.pack(">Bd", 0xCB, v)
    elif isinstance(v, (str, bytes)):
        out += msgpack.packb(v, use_bin_type=True)
    elif isinstance(v, list):
        out += struct.pack(">BI", 0xDD, len(v))  # array 32, even when short
        for item in v:
            pack(item, out)
    elif isinstance(v, dict):
        out += struct.pack(">BH", 0xDE, len(v))  # map 16, even when short
        for k, item in v.items():
            pack(k, out)
            pack(item, out)
    else:
        raise TypeError(type(v))
    return out


def reordered(msg):
    """Keys reversed (so `type` comes last), recursively."""
    if isinstance(msg, dict):
        return {k: reordered(msg[k]) for k in reversed(list(msg))}
    if isinstance(msg, list):
        return [reordered(v) for v in msg]
    return msg


def widened(msg):
    """Integers in their 64-bit forms, floats as float 64, recursively."""
    if isinstance(msg, dict):
        return {k: widened(v) for k, v in msg.items()}
    if isinstance(msg, list):
        return [widened(v) for v in msg]
    if isinstance(msg, bool):
        return msg
    if isinstance(msg, int):
        return Wide(msg)
    if isinstance(msg, float):
        return float(msg)
    return msg


def with_extras(msg):
    """Extra keys a newer minor version might send, at the top level and in records."""
    out = dict(msg)
    out["x_future"] = {"nested": [1, None, F32(2.5), {"deep": [b"\x00" * 3]}], "flag": True}
    if "samples" in out:
        out["samples"] = [dict(r, antenna="yagi", gain_map=[1, 2, 3]) for r in out["samples"]]
    return out


def python_writes():
    print("(b) frames written by Python, read by Rust")
    cases = []  # (label, frame bytes, expected outcome)
    for name, msg in EXPECTED.items():
        want = ("ok", canonical(msg).hex())
        cases.append((f"{name}/packb", make_frame(msgpack.packb(msg, use_bin_type=True)), want))
        cases.append((f"{name}/reordered", make_frame(bytes(pack(reordered(msg), bytearray()))), want))
        cases.append((f"{name}/wide+f64", make_frame(bytes(pack(widened(msg), bytearray()))), want))
        extra = bytes(pack(with_extras(reordered(widened(msg))), bytearray()))
        cases.append((f"{name}/extras+lz4", make_frame(extra, compress=True), want))
    # Signed forms of small non-negative integers, and float 32 given explicitly.
    ping = {"t_ns": Int8(-3), "seq": Int8(9), "type": "ping"}
    cases.append(("ping/int8", make_frame(bytes(pack(ping, bytearray()))),
                  ("ok", canonical({"type": "ping", "seq": 9, "t_ns": -3}).hex())))
    # Invalid messages: the error must name the field.
    bad_record = dict(GOLDEN_RECORD, quality_score=101)
    invalid = {
        "bad/quality": ({"type": "rssi", "seq": 1, "samples": [bad_record]}, "quality_score"),
        "bad/nan_rssi": ({"type": "rssi", "seq": 1, "samples": [dict(GOLDEN_RECORD, rssi_dbm=float("nan"))]}, "rssi_dbm"),
        "bad/zero_freq": ({"type": "rssi", "seq": 1, "samples": [dict(GOLDEN_RECORD, frequency_hz=0)]}, "frequency_hz"),
        "bad/no_samples": ({"type": "rssi", "seq": 1, "samples": []}, "samples"),
        "bad/nonce_str": (dict(EXPECTED["challenge"], nonce="0123456789abcdef"), "nonce"),
        "bad/mac_31": (dict(EXPECTED["auth"], mac=b"\x00" * 31), "mac"),
        "bad/node_long": (dict(EXPECTED["hello"], node="n" * 65), "node"),
        "bad/role": (dict(EXPECTED["hello"], role="pilot"), "role"),
        "bad/no_seq": ({"type": "rx"}, "seq"),
        "bad/seq_u32": ({"type": "ping", "seq": 1 << 32, "t_ns": 0}, "seq"),
        "bad/tune_no_freq": ({"type": "cmd", "id": 1, "op": "tune"}, "frequency_hz"),
        "bad/no_type": ({"seq": 1}, "type"),
        # Protocol 1.1 beacon keys are validated like the others.
        "bad/clip_above_1": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, clip_fraction=1.5)]}, "clip_fraction"),
        "bad/clip_negative": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, clip_fraction=-0.001)]}, "clip_fraction"),
        "bad/smoothing_zero": ({"type": "rssi", "seq": 1, "samples": [dict(MADE_RECORD, smoothing=0.0)]}, "smoothing"),
        "bad/smoothing_above_1": ({"type": "rssi", "seq": 1, "samples": [dict(MADE_RECORD, smoothing=1.5)]}, "smoothing"),
        "bad/stale_not_bool": ({"type": "rssi", "seq": 1, "samples": [dict(MADE_RECORD, stale=1)]}, "stale"),
        "bad/nan_pulse": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, pulse_dbm=float("nan"))]}, "pulse_dbm"),
        "bad/inf_last_pulse": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, last_pulse_dbm=float("inf"))]}, "last_pulse_dbm"),
        "bad/nan_offset": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, offset_hz=float("nan"))]}, "offset_hz"),
        "bad/pulses_negative": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, pulses=-1)]}, "pulses"),
        "bad/width_u64": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, pulse_width_us=1 << 32)]}, "pulse_width_us"),
        "bad/detected_int": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, detected=1)]}, "detected"),
        "bad/burst_str": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, burst="yes")]}, "burst"),
        "bad/lat_range": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, lat_e7=900000001)]}, "lat_e7"),
        "bad/lon_float": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, lon_e7=1.5)]}, "lon_e7"),
        "bad/nan_alt": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, alt_m=float("nan"))]}, "alt_m"),
        "bad/heading_360": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, heading_deg=360.0)]}, "heading_deg"),
        "bad/start_float": ({"type": "rssi", "seq": 1, "samples": [dict(BEACON_RECORD, pulse_start_ns=1.5)]}, "pulse_start_ns"),
    }
    for label, (msg, field) in invalid.items():
        cases.append((label, make_frame(msgpack.packb(msg, use_bin_type=True)), ("error", field)))
    cases.append(("unknown/type", make_frame(msgpack.packb({"type": "telemetry_v9", "x": [1, {"y": 2}]})),
                  ("unknown", "telemetry_v9")))
    unknown_op = {"type": "cmd", "id": 5, "op": "self_test", "level": 3}
    cases.append(("unknown/op", make_frame(msgpack.packb(unknown_op)),
                  ("ok", canonical({"type": "cmd", "id": 5, "op": "self_test"}).hex())))

    stdin = "".join(f"{label} {frame.hex()}\n" for label, frame, _ in cases)
    results = {}
    for line in run_example("read", stdin).splitlines():
        label, outcome, rest = line.split(" ", 2)
        results[label] = (outcome, rest)
    for label, _, (outcome, detail) in cases:
        got = results.get(label)
        if not check(got is not None, f"{label}: no answer from Rust"):
            continue
        if outcome == "ok":
            ok = got[0] == "ok" and got[1].split(" ", 1)[1] == detail
            check(ok, f"{label}: Rust read {got}, expected canonical {detail}")
        elif outcome == "error":
            check(got[0] == "error" and got[1].split(" ", 1)[0] == detail,
                  f"{label}: expected an error naming `{detail}`, got {got}")
        else:
            check(got == ("unknown", detail), f"{label}: expected unknown {detail}, got {got}")
    return len(cases)


def main():
    written = rust_writes()
    read = python_writes()
    if failures:
        print(f"interop/messages.py: {len(failures)} mismatches")
        sys.exit(1)
    print(f"interop/messages.py: ok ({written} frames from Rust checked, {read} frames from Python read)")


if __name__ == "__main__":
    main()
