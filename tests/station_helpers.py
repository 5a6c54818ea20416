"""Helpers for the station tests: a tiny real exported model, scan bytes, a running station.

The model is a seeded, untrained ConcealNet exported through the real exporter, with a high
heat prior and a low alarm threshold so that every scan alarms: the tests then exercise the
real ONNX path (sha256 manifest, metadata, decode, overlay) without any training.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from conftest import colour_image, parcel_counts

TINY_CFG = {"widths": (8, 8, 16, 16, 16), "blocks": (1, 1, 1, 1, 1), "neck_width": 16,
            "prior_prob": 0.3}


def export_tiny_model(folder: Path, kind: str = "dual", version: str = "1.0.0",
                      alarm_threshold: float = 0.06, seed: int = 0) -> tuple[Path, Path]:
    """(model.onnx, checkpoint.pt) of a seeded untrained model for ``kind`` scans."""
    import torch

    from detector.preprocess import InputSpec
    from training import checkpoint
    from training.export import export_onnx
    from training.model import ConcealNet, ModelConfig

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    spec = InputSpec.for_kind(kind)
    net = ConcealNet(ModelConfig(in_channels=spec.num_channels, num_classes=1, **TINY_CFG))
    ckpt = folder / f"tiny-{kind}.pt"
    checkpoint.save(ckpt, model=net, spec=spec, classes=["concealed_organic"],
                    name=f"tiny-{kind}", alarm_threshold=alarm_threshold,
                    provenance=checkpoint.provenance({}, "tests/station_helpers.py", []))
    model = folder / f"tiny-{kind}.onnx"
    export_onnx(ckpt, model, version=version, trace_hw=(64, 96))
    return model, ckpt


_CACHE: dict[tuple, tuple[Path, Path]] = {}


def tiny_model(kind: str = "dual", version: str = "1.0.0") -> tuple[Path, Path]:
    """`export_tiny_model`, exported once per test session (export takes a few seconds)."""
    key = (kind, version)
    if key not in _CACHE:
        folder = Path(tempfile.mkdtemp(prefix="concealscan-tiny-"))
        atexit.register(shutil.rmtree, folder, True)
        _CACHE[key] = export_tiny_model(folder, kind, version)
    return _CACHE[key]


def png_bytes(pixels: np.ndarray) -> bytes:
    if pixels.ndim == 3:
        pixels = pixels[:, :, ::-1]
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return buf.tobytes()


def dual_pair_bytes(shape=(96, 128)) -> tuple[bytes, bytes]:
    return (png_bytes(parcel_counts(shape, 16, seed=1)),
            png_bytes(parcel_counts(shape, 16, seed=2)))


def colour_bytes(shape=(96, 128)) -> bytes:
    return png_bytes(colour_image(shape))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port in a thread (real HTTP)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def drag_box(page, start=0.2, size=0.3) -> None:
    """Drag the mouse over the viewer's scan (Playwright ``page``) from ``start`` to
    ``start + size`` of the visible scan's width and height, as an operator draws a box."""
    s, v = page.locator("#stage").bounding_box(), page.locator("#viewport").bounding_box()
    left, top = max(s["x"], v["x"]), max(s["y"], v["y"])
    width = min(s["x"] + s["width"], v["x"] + v["width"]) - left
    height = min(s["y"] + s["height"], v["y"] + v["height"]) - top
    assert width > 20 and height > 20, (s, v)  # the scan shows
    x0, y0 = left + width * start, top + height * start
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + width * size, y0 + height * size, steps=5)
    page.mouse.up()
