#!/usr/bin/env python3
"""TLS transport against an independent TLS stack: Python's own ssl module (OpenSSL).

Runs from the repository root with the binaries built (`target/debug`, or $SARLINK_BIN_DIR):

- `sarlink-ground ca` makes a fleet CA and certificates for the ground and two drones;
- a real `sarlink-ground --tls` starts;
- this script connects as drone "py-drone" with ssl (TLS 1.3, its certificate, the fleet CA,
  and the ground's name checked), frames `hello` and ten `rssi` by hand (msgpack, xxhash),
  gets `welcome` and `rx`, then streams at 10 Hz for 3.5 s pinging every second (as a v1
  peer may) and checks the ground's liveness (docs/PROTOCOL.md 4.3 and 5): every ping
  answered by a matching pong, the ground's own pings, every record acknowledged and the
  ground never silent for more than 2 s (its bounds are 1 s for both; the slack is for a
  busy test machine, still well inside the 3 s liveness timeout); says `bye`, and finds every record in the ground's output;
- a `hello` naming another node over the same certificate gets `reject auth`;
- a client expecting another ground name refuses the ground's certificate;
- a client without a certificate cannot complete the handshake.

Prints one summary line; exits non-zero on any failure.
"""

import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import xxhash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SARLINK_BIN_DIR", os.path.join(ROOT, "target", "debug"))
HEADER = struct.Struct(">BII")


def fail(message):
    print(f"interop/tls_peer.py: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def frame(message):
    payload = msgpack.packb(message, use_bin_type=True)
    header = HEADER.pack(0x00, len(payload), 0)
    return header + payload + struct.pack(">Q", xxhash.xxh64_intdigest(header + payload))


class Peer:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, message):
        self.sock.sendall(frame(message))

    def recv(self, timeout=10):
        """The next message (frames are never compressed here: we offered no codec)."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= HEADER.size:
                flags, wire_len, _ = HEADER.unpack_from(self.buf)
                end = HEADER.size + wire_len + 8
                if len(self.buf) >= end:
                    body = self.buf[HEADER.size : end - 8]
                    (checksum,) = struct.unpack_from(">Q", self.buf, end - 8)
                    if checksum != xxhash.xxh64_intdigest(self.buf[: end - 8]):
                        fail("a frame from the ground has a bad checksum")
                    if flags != 0:
                        fail(f"unexpected frame flags {flags:#x}")
                    self.buf = self.buf[end:]
                    return msgpack.unpackb(body, raw=False)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def recv_type(self, *types):
        while True:
            m = self.recv()
            if m is None or m["type"] in types:
                return m


def stream_with_pings(peer, first, seconds):
    """Sends a record every 100 ms and a ping every second for `seconds`, answering the
    ground's pings; checks what comes back (see the module documentation). Returns how
    many records it sent and what it saw."""
    start = time.time()
    next_record, next_ping = start, start + 0.5
    sent_at, pings = {}, {}
    ping_seq, pongs, ground_pings = 0, 0, 0
    acked, worst_ack = first, 0.0
    last_heard, max_silence = start, 0.0
    n = 0
    end = start + seconds
    while time.time() < end or (pings and time.time() < end + 1.0):
        now = time.time()
        if now < end and now >= next_record:
            peer.send({"type": "rssi", "seq": first + n, "samples": [record(first + n)]})
            sent_at[first + n] = now
            n += 1
            next_record += 0.1
        if now < end and now >= next_ping:
            ping_seq += 1
            t_ns = time.monotonic_ns()
            pings[ping_seq] = t_ns
            peer.send({"type": "ping", "seq": ping_seq, "t_ns": t_ns})
            next_ping += 1.0
        try:
            m = peer.recv(timeout=0.02)
        except (socket.timeout, TimeoutError):
            continue
        if m is None:
            fail("the ground closed the connection while streaming")
        t = time.time()
        max_silence = max(max_silence, t - last_heard)
        last_heard = t
        if m["type"] == "rx":
            for s in range(acked, min(m["seq"], first + n)):
                worst_ack = max(worst_ack, t - sent_at[s])
            acked = max(acked, m["seq"])
        elif m["type"] == "pong":
            if pings.pop(m["seq"], None) != m["t_ns"]:
                fail(f"a pong that answers no ping of ours: {m}")
            pongs += 1
        elif m["type"] == "ping":
            ground_pings += 1
            peer.send({"type": "pong", "seq": m["seq"], "t_ns": m["t_ns"]})
    if pings:
        fail(f"pings never answered: {sorted(pings)}")
    if pongs < 3 or ground_pings < 2:
        fail(f"{pongs} pongs and {ground_pings} ground pings in {seconds} s")
    if acked < first + n - 12 or worst_ack > 2.0:
        fail(f"acknowledged up to {acked} of {first + n}, slowest {worst_ack:.3f} s")
    if max_silence > 2.0:
        fail(f"the ground was silent for {max_silence:.3f} s")
    return n, (f"{pongs} pongs, {ground_pings} ground pings, slowest rx {worst_ack:.3f} s, "
               f"longest silence {max_silence:.3f} s")


def hello(node):
    return {
        "type": "hello", "proto": "sarlink", "version": [1, 1], "role": "drone",
        "node": node, "stream": 0x5EC0DE, "compression": [], "max_message": 1 << 20,
        "nonce": os.urandom(16),
    }


def record(i):
    return {
        "timestamp_ns": 1764000000000000000 + i * 100_000_000, "rssi_dbm": -71.5 + i,
        "frequency_hz": 406025000, "source_id": 0, "quality_score": 87,
    }


def context(ca, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def connect(port, ctx, server_name="ground"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return Peer(ctx.wrap_socket(raw, server_hostname=server_name))


def main():
    for exe in ("sarlink-ground",):
        if not os.path.exists(os.path.join(BIN, exe)):
            raise SystemExit(f"{exe} not found in {BIN}: build it first (cargo build)")
    ground_bin = os.path.join(BIN, "sarlink-ground")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SARLINK_")}
    with tempfile.TemporaryDirectory() as tmp:
        ca_dir = os.path.join(tmp, "ca")
        for args in (["init"], ["issue", "ground"], ["issue", "py-drone"]):
            subprocess.run([ground_bin, "ca", "--dir", ca_dir, *args], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        ca = os.path.join(ca_dir, "ca.pem")
        cert = os.path.join(ca_dir, "py-drone.pem")
        key = os.path.join(ca_dir, "py-drone.key")
        out = os.path.join(tmp, "out.jsonl")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        ground = subprocess.Popen(
            [ground_bin, "--listen", f"127.0.0.1:{port}", "--quiet", "--tls", ca_dir,
             "--output-file", out],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        fail("the ground never listened")
                    time.sleep(0.05)

            # The honest drone.
            peer = connect(port, context(ca, cert, key))
            if peer.sock.version() != "TLSv1.3":
                fail(f"negotiated {peer.sock.version()}")
            peer.send(hello("py-drone"))
            welcome = peer.recv_type("welcome", "reject")
            if welcome is None or welcome["type"] != "welcome":
                fail(f"no welcome: {welcome}")
            seq = welcome["resume_seq"]
            for i in range(10):
                peer.send({"type": "rssi", "seq": seq + i, "samples": [record(seq + i)]})
            rx = peer.recv_type("rx")
            while rx is not None and rx["seq"] < seq + 10:
                rx = peer.recv_type("rx")
            if rx is None:
                fail("the ground never acknowledged the ten records")
            streamed, liveness = stream_with_pings(peer, seq + 10, 3.5)
            sent = seq + 10 + streamed
            peer.send({"type": "bye", "code": "shutdown", "reason": "done"})
            peer.sock.close()

            # The same certificate naming another node.
            peer = connect(port, context(ca, cert, key))
            peer.send(hello("someone-else"))
            answer = peer.recv_type("welcome", "reject")
            if answer is None or answer["type"] != "reject" or answer["code"] != "auth":
                fail(f"another node's name was not refused with auth: {answer}")
            peer.sock.close()

            # A client expecting another ground.
            try:
                connect(port, context(ca, cert, key), server_name="not-the-ground")
                fail("a certificate for another name was accepted")
            except ssl.SSLCertVerificationError:
                pass

            # A client without a certificate.
            try:
                peer = connect(port, context(ca))
                peer.send(hello("py-drone"))
                if peer.recv() is not None:
                    fail("a client without a certificate got an answer")
            except (ssl.SSLError, ConnectionError, socket.timeout):
                pass

            deadline = time.time() + 10
            got = []
            while time.time() < deadline:
                with open(out) as f:
                    got = [json.loads(line) for line in f if line.strip()]
                got = [r for r in got if r.get("type") == "rssi" and r.get("node") == "py-drone"]
                if len(got) >= sent - seq:
                    break
                time.sleep(0.1)
            if sorted(r["seq"] for r in got) != list(range(seq, sent)):
                fail(f"the ground wrote {[r['seq'] for r in got]}")
        finally:
            ground.terminate()
            ground.wait(timeout=10)
    print(f"tls_peer: OK: Python ssl (TLS 1.3, mutual) streamed {sent - seq} records "
          f"({liveness}); a wrong name, a wrong ground and a missing certificate were refused")


if __name__ == "__main__":
    main()
