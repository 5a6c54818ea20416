"""An endless, seeded stream of simulated scans for training on the fly (no torch here).

``SimStream(config, seed)[i]`` renders scan ``i`` exactly as ``concealscan synth`` with the
same config and seed would write it, and returns it as the detector would read it back from
those files: attenuation from the 16-bit counts, the 8-bit colour and gray views. Wrap it in
a ``torch.utils.data.Dataset`` on the training side. For fast CPU training, render smaller
scans with ``configs/synth/small.yaml`` or `SimStream.at_resolution`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.scan import transmission_to_attenuation
from training.sim.config import SynthConfig, load_config


@dataclass(frozen=True)
class SimSample:
    """One simulated scan in the form the detector sees it."""

    att_high: np.ndarray  # (H, W) float32 attenuation read back from the 16-bit counts
    att_low: np.ndarray  # (H, W) float32
    color: np.ndarray  # (H, W, 3) uint8 RGB pseudo-colour
    gray_att: np.ndarray  # (H, W) float32 attenuation read back from the 8-bit gray view
    boxes_xyxy: np.ndarray  # (N, 4) float32 concealed packets, pixels, x1 y1 x2 y2
    benign_boxes_xyxy: np.ndarray  # (M, 4) float32 look-alike blocks (hard negatives)
    annotations: list[dict]  # one dict per row of boxes_xyxy: host, material, mass_g, ...
    image: dict  # the COCO images entry: scan_id, pixel_mm, positive, host_kinds, ...
    record: dict  # the scene record that replays the scan

    def __post_init__(self) -> None:
        h, w = self.att_high.shape
        for name, arr, shape, dtype in (
                ("att_low", self.att_low, (h, w), np.float32),
                ("color", self.color, (h, w, 3), np.uint8),
                ("gray_att", self.gray_att, (h, w), np.float32)):
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"SimSample.{name}: expected {shape} {np.dtype(dtype)}, got "
                                 f"{arr.shape} {arr.dtype}")
        for name in ("boxes_xyxy", "benign_boxes_xyxy"):
            boxes = getattr(self, name)
            if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype != np.float32:
                raise ValueError(f"SimSample.{name}: expected (N, 4) float32, got "
                                 f"{boxes.shape} {boxes.dtype}")


def _xyxy(entries: list[dict]) -> np.ndarray:
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (e["bbox"] for e in entries)]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


class SimStream:
    """Scan ``index`` of an endless simulated data set; deterministic per (seed, index)."""

    def __init__(self, config: SynthConfig | str | Path | None = None, seed: int = 0,
                 prefix: str = "synth_"):
        self.config = config if isinstance(config, SynthConfig) else load_config(config)
        self.seed = int(seed)
        self.prefix = prefix

    def at_resolution(self, pixel_mm: tuple[float, float], channels: int,
                      length_px: tuple[int, int]) -> SimStream:
        """The same stream rendered on a coarser detector grid (smaller, faster scans)."""
        margin = (min(self.config.scanner.margin_px[0], length_px[0] // 8),
                  min(self.config.scanner.margin_px[1], length_px[0] // 4))
        scanner = dataclasses.replace(self.config.scanner, pixel_mm=tuple(pixel_mm),
                                      channels=channels, length_px=tuple(length_px),
                                      margin_px=margin)
        return SimStream(dataclasses.replace(self.config, scanner=scanner), self.seed,
                         self.prefix)

    def __getitem__(self, index: int) -> SimSample:
        from training.sim.generate import generate

        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"SimStream index: expected an integer >= 0, got {index!r}")
        result = generate(self.config, self.seed, int(index), f"{self.prefix}{int(index):06d}")
        att = transmission_to_attenuation(result.counts, 16)
        return SimSample(att_high=att[0], att_low=att[1], color=result.color,
                         gray_att=transmission_to_attenuation(result.gray, 8),
                         boxes_xyxy=_xyxy(result.annotations),
                         benign_boxes_xyxy=_xyxy(result.benign),
                         annotations=result.annotations, image=result.image_entry(),
                         record=result.record)

    def __iter__(self) -> Iterator[SimSample]:
        index = 0
        while True:
            yield self[index]
            index += 1
