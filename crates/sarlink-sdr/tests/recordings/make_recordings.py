#!/usr/bin/env python3
"""Writes test recordings holding a tone of known power, for tests/recordings.rs.

    make_recordings.py raw OUTDIR     rtl_433-named raw files: cu8 cs8 cs16 cf32 cu16
    make_recordings.py sigmf OUTDIR   SigMF written by the official `sigmf` package
                                      (cu8, ci16_le, cf32_le: meta/data pair and archive;
                                      and a recording retuned in captures[1])

Samples are written with the standard library only (struct/array, no numpy), in rtl_433's
conventions: cu8 (v - 127.5) / 127.5, cs8 v / 128, cs16 little-endian int16 / 32768,
cu16 little-endian (v - 32767.5) / 32767.5, cf32 little-endian float32, full scale 1.0.
The tone is a complex exponential at +50 kHz from the centre; power in dBFS is exact up to
quantisation.
"""

import array
import math
import os
import sys

RATE = 250_000
OFFSET_HZ = 50_000.0
SECONDS = 0.5
FREQ = 433_920_000
RETUNE_FREQ = 434_500_000
TONE_DBFS = -20.0
RETUNE_TONE_DBFS = -30.0


def tone(n, dbfs, start=0):
    """n complex samples of a tone at OFFSET_HZ with power dbfs: a list of (i, q) floats."""
    a = 10 ** (dbfs / 20)
    w = 2 * math.pi * OFFSET_HZ / RATE
    return [(a * math.cos(w * k), a * math.sin(w * k)) for k in range(start, start + n)]


def little(arr):
    if sys.byteorder != "little":
        arr.byteswap()
    return arr.tobytes()


def encode(samples, fmt):
    flat = [x for s in samples for x in s]
    if fmt == "cu8":
        return bytes(max(0, min(255, round(127.5 + 127.5 * x))) for x in flat)
    if fmt == "cs8":
        return array.array("b", [max(-128, min(127, round(128 * x))) for x in flat]).tobytes()
    if fmt in ("cs16", "ci16_le"):
        return little(array.array("h", [max(-32768, min(32767, round(32768 * x))) for x in flat]))
    if fmt == "cu16":
        return little(array.array("H", [max(0, min(65535, round(32767.5 + 32767.5 * x))) for x in flat]))
    if fmt in ("cf32", "cf32_le"):
        return little(array.array("f", flat))
    raise ValueError(fmt)


def raw(outdir):
    samples = tone(int(RATE * SECONDS), TONE_DBFS)
    for ext in ("cu8", "cs8", "cs16", "cf32", "cu16"):
        with open(os.path.join(outdir, f"tone_433.92M_250k.{ext}"), "wb") as f:
            f.write(encode(samples, ext))
    # No parameters in the name: the reader must be given them.
    with open(os.path.join(outdir, "capture.cu8"), "wb") as f:
        f.write(encode(samples, "cu8"))


def sigmf(outdir):
    import sigmf as sigmf_pkg
    from sigmf import SigMFFile

    # Keys spelled out: the constants moved between sigmf releases.

    def write(base, datatype, segments):
        """segments: [(frequency, samples)]; writes base.sigmf-meta/-data and base.sigmf."""
        data_path = os.path.join(outdir, base + ".sigmf-data")
        with open(data_path, "wb") as f:
            for _, samples in segments:
                f.write(encode(samples, datatype))
        meta = SigMFFile(
            data_file=data_path,
            global_info={
                "core:datatype": datatype,
                "core:sample_rate": RATE,
                "core:version": sigmf_pkg.__specification__,
                "core:description": f"sarlink test tone, {datatype}",
            },
        )
        start = 0
        for freq, samples in segments:
            meta.add_capture(start, metadata={"core:frequency": freq})
            start += len(samples)
        meta.tofile(os.path.join(outdir, base))
        meta.archive(os.path.join(outdir, base + "_archive"))

    n = int(RATE * SECONDS)
    for datatype in ("cu8", "ci16_le", "cf32_le"):
        write(f"tone_{datatype}", datatype, [(FREQ, tone(n, TONE_DBFS))])
    half = n // 2
    write(
        "retune_ci16_le",
        "ci16_le",
        [(FREQ, tone(half, TONE_DBFS)), (RETUNE_FREQ, tone(n - half, RETUNE_TONE_DBFS, half))],
    )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("raw", "sigmf"):
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    {"raw": raw, "sigmf": sigmf}[sys.argv[1]](sys.argv[2])
