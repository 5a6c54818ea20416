"""Does each compressed-frame decoder notice a stream cut short? Prints one JSON line per codec.

    .venv/bin/python benchmarks/codec_cuts.py --cuts 300

A 12-bit scan-like image is encoded with each codec DICOM may carry (JPEG-LS lossless and
near-lossless, JPEG 2000 lossless and lossy, JPEG Lossless through imagecodecs' lj92 and
libjpeg-turbo); each stream is cut at ``--cuts`` random points, with and without an end marker
appended (what a damaged transfer leaves), and decoded. ``silent`` counts decodes that returned
an image instead of raising: the reader (`detector.dicom.decode_encapsulated`) uses only
codecs that give 0 there (a lossy JPEG 2000 stream cut at a quality-layer boundary is a whole,
coarser image by design).
"""

from __future__ import annotations

import argparse
import json

import imagecodecs
import numpy as np


def _image(rng: np.random.Generator) -> np.ndarray:
    img = rng.normal(1200, 300, (256, 256)).clip(0, 4095).astype(np.uint16)
    img[50:120, 60:200] = 3000  # a dense block, as a packet under clutter
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=300, help="cut points per codec (300)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    img = _image(rng)
    codecs = {
        "jpegls": (imagecodecs.jpegls_encode(img), imagecodecs.jpegls_decode),
        "jpegls_near": (imagecodecs.jpegls_encode(img, level=2), imagecodecs.jpegls_decode),
        "jpeg2k_lossless": (imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K"),
                            imagecodecs.jpeg2k_decode),
        "jpeg2k_lossy": (imagecodecs.jpeg2k_encode(img, level=40, codecformat="J2K",
                                                   reversible=False), imagecodecs.jpeg2k_decode),
        "ljpeg_lj92": (imagecodecs.ljpeg_encode(img), imagecodecs.ljpeg_decode),
        "ljpeg_libjpeg_turbo": (imagecodecs.ljpeg_encode(img), imagecodecs.jpeg8_decode),
    }
    for name, (data, decode) in codecs.items():
        silent = 0
        for _ in range(args.cuts):
            cut = int(rng.integers(20, len(data) - 1))
            for tail in (b"", b"\xff\xd9"):
                try:
                    decode(data[:cut] + tail)
                    silent += 1
                except Exception:  # noqa: BLE001, S110 -- raising is the wanted outcome
                    pass
        print(json.dumps({"codec": name, "bytes": len(data), "decodes": 2 * args.cuts,
                          "silent": silent}))


if __name__ == "__main__":
    main()
