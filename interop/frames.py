#!/usr/bin/env python3
"""Frame-layer interoperability: sarlink-wire against an independent Python stack.

Run from the repository root: python3 interop/frames.py

(a) Rust encodes frames (plain and LZ4-compressed); this script decodes them with its own
    header parsing, xxhash.xxh64 and lz4.frame, and checks every payload. Plain frames must
    also be byte-identical to the frames this script builds itself.
(b) This script writes frames (plain, and compressed by lz4.frame with various settings);
    Rust decodes them and must return every payload.
(c) A stream with one corrupted byte must make Rust fail with close code "checksum".

Prints one summary line; exits non-zero on any mismatch.
"""
import os
import random
import struct
import subprocess
import sys

import lz4.frame
import msgpack
import xxhash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = ["cargo", "run", "-q", "--locked", "-p", "sarlink-wire", "--example", "interop", "--"]
HEADER = struct.Struct(">BII")
THRESHOLD = 1024


def fail(message):
    print(f"interop/frames.py: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def rust(args, stdin):
    proc = subprocess.run(EXAMPLE + args, input=stdin, capture_output=True, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def length_prefixed(payloads):
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


def split_length_prefixed(data):
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def frame(payload, compressed_with=None):
    """Builds a frame the way the spec says, independently of the Rust code."""
    if compressed_with is None:
        header = HEADER.pack(0x00, len(payload), 0)
        body = payload
    else:
        body = lz4.frame.compress(payload, **compressed_with)
        header = HEADER.pack(0x01, len(body), len(payload))
    checksum = xxhash.xxh64_intdigest(header + body, seed=0)
    return header + body + struct.pack(">Q", checksum)


def parse_frames(stream):
    """Decodes a frame stream: yields (payload, compressed, frame bytes)."""
    pos = 0
    while pos < len(stream):
        if len(stream) - pos < HEADER.size:
            fail("rust output ends inside a header")
        flags, wire_len, raw_len = HEADER.unpack_from(stream, pos)
        if flags & 0xF0 or (flags & 0x0E):
            fail(f"rust wrote flags {flags:#04x}")
        end = pos + HEADER.size + wire_len
        if wire_len == 0 or end + 8 > len(stream):
            fail(f"rust wrote a bad wire_len {wire_len}")
        (checksum,) = struct.unpack_from(">Q", stream, end)
        if checksum != xxhash.xxh64_intdigest(stream[pos:end], seed=0):
            fail("checksum of a rust frame does not match")
        body = stream[pos + HEADER.size : end]
        if flags & 0x01:
            payload = lz4.frame.decompress(body)
            if len(payload) != raw_len:
                fail(f"raw_len {raw_len} but lz4.frame produced {len(payload)} bytes")
            if wire_len >= raw_len:
                fail("rust compressed a payload although it did not get smaller")
        else:
            if raw_len != 0:
                fail("rust wrote a plain frame with raw_len != 0")
            payload = body
        yield payload, bool(flags & 0x01), stream[pos : end + 8]
        pos = end + 8


def rssi_batch(seq, n, rng):
    samples = [
        {
            "timestamp_ns": 1_764_000_000_000_000_000 + i * 100_000_000,
            "rssi_dbm": -70.0 - rng.randint(0, 200) / 10,
            "frequency_hz": 406_025_000,
            "source_id": 0,
            "quality_score": rng.randint(60, 100),
            "snr_db": rng.randint(0, 300) / 10,
        }
        for i in range(n)
    ]
    return msgpack.packb({"type": "rssi", "seq": seq, "samples": samples}, use_single_float=True)


def payloads():
    rng = random.Random(2)
    out = [
        msgpack.packb({"type": "ping", "seq": 7, "t_ns": 1700000000123456789}),
        b"x",
        bytes(THRESHOLD),  # exactly the threshold: never compressed
        bytes(THRESHOLD + 1),  # one over: compressed
        rng.randbytes(5000),  # incompressible: sent plain
        rng.randbytes(70_000) + bytes(70_000),  # a stored block, then compressible ones
        bytes(1 << 20),  # 1 MiB of zeros: 16 blocks
    ]
    out += [rssi_batch(seq, n, rng) for seq, n in enumerate([1, 16, 100, 1000, 5000])]
    return out


LZ4_SETTINGS = [
    {},
    {"block_linked": False},
    {"block_linked": True, "content_checksum": True},
    {"block_checksum": True, "content_checksum": True},
    {"block_size": lz4.frame.BLOCKSIZE_MAX64KB},
    {"block_size": lz4.frame.BLOCKSIZE_MAX256KB, "block_linked": False},
    {"block_size": lz4.frame.BLOCKSIZE_MAX4MB, "store_size": False},
    {"compression_level": lz4.frame.COMPRESSIONLEVEL_MINHC},
]


def main():
    build = subprocess.run(
        ["cargo", "build", "-q", "--locked", "-p", "sarlink-wire", "--example", "interop"], cwd=ROOT
    )
    if build.returncode != 0:
        fail("building the interop example failed")
    msgs = payloads()

    # (a) Rust encodes, Python decodes.
    status, stream, err = rust(["encode", str(THRESHOLD)], length_prefixed(msgs))
    if status != 0:
        fail(f"rust encode exited with {status}: {err}")
    decoded = list(parse_frames(stream))
    if [p for p, _, _ in decoded] != msgs:
        fail("payloads decoded from rust frames differ from the originals")
    compressed = 0
    for (payload, was_compressed, raw), original in zip(decoded, msgs):
        if was_compressed:
            compressed += 1
        elif raw != frame(original):
            fail(f"plain frame of {len(original)} bytes differs from the spec's layout")
        if was_compressed and len(original) <= THRESHOLD:
            fail(f"rust compressed a {len(original)}-byte payload (threshold {THRESHOLD})")
    if compressed < 6:
        fail(f"expected rust to compress at least 6 of the payloads, it compressed {compressed}")

    # (b) Python encodes, Rust decodes.
    sent = []
    stream = b""
    for settings in [None] + LZ4_SETTINGS:
        for payload in msgs:
            sent.append(payload)
            stream += frame(payload, settings)
    status, out, err = rust(["decode"], stream)
    if status != 0:
        fail(f"rust decode exited with {status}: {err}")
    if split_length_prefixed(out) != sent:
        fail("payloads decoded by rust differ from the ones python framed")

    # (c) Corruption is rejected with the right close code.
    bad = bytearray(frame(msgs[1]) + frame(msgs[-1], {}))
    bad[len(bad) - 100] ^= 0x10
    status, out, err = rust(["decode"], bytes(bad))
    if status != 2 or "close code checksum" not in err:
        fail(f"corrupted stream: rust exited with {status}: {err}")

    print(
        f"interop/frames.py: ok: rust->python {len(decoded)} frames ({compressed} compressed), "
        f"python->rust {len(sent)} frames ({len(LZ4_SETTINGS)} lz4.frame settings), "
        "corruption rejected"
    )


if __name__ == "__main__":
    main()
