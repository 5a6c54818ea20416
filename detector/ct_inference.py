"""Run the CT model on a whole volume: slabs, 2-D decode per slab, 3-D fusion, map back.

`infer_volume` is the one path from a `Volume` to 3-D boxes; the workstation
(`VolumeDetector`, ONNX) and training's evaluation (torch) both call it with their own
``predict``. Decoding is the 2-D detector's `decode`; fusion is `detector.ct_fuse.fuse`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.ct_fuse import FuseParams, fuse
from detector.ct_preprocess import model_grids, resample, slabs, zoom_factors
from detector.inference import Alarms, Predict, check_candidates
from detector.postprocess import DecodeParams, decode
from detector.preprocess import InputSpec
from detector.volume import Volume

SLAB_BATCH = 16
#: Slab candidates below this are not decoded. Fused scores depend on it, so evaluation
#: (`training.ct_eval`) picks operating points with the same value `detect` uses by default.
MIN_SCORE = 0.05


def _expect(cond: bool, what: str, expected: str, got) -> None:
    if not cond:
        raise ValueError(f"VolumeDetection.{what}: expected {expected}, got {got}")


@dataclass(frozen=True)
class VolumeDetection(Alarms):
    """The validated result for one volume: boxes in the volume's own voxels, best first."""

    scan_id: str
    size_dhw: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    boxes_xyzxyz: np.ndarray  # (N, 6) float32: x1, y1, z1, x2, y2, z2 in voxels
    scores: np.ndarray  # (N,) float32, descending
    labels: np.ndarray  # (N,) int64 into class_names
    class_names: tuple[str, ...]
    alarm_threshold: float
    model: dict
    time_ms: float

    def __post_init__(self) -> None:
        b = self.boxes_xyzxyz
        check_candidates("VolumeDetection", "boxes_xyzxyz", b, self.scores, self.labels,
                         self.class_names, self.alarm_threshold)
        d, h, w = self.size_dhw
        limit = np.array([w, h, d], np.float32)
        inside = (b[:, :3] >= 0).all(1) & (b[:, 3:] <= limit).all(1) & (b[:, 3:] >= b[:, :3]).all(1)
        _expect(bool(inside.all()), "boxes_xyzxyz", f"0 <= low <= high <= {(w, h, d)}",
                b[~inside])


@dataclass(frozen=True)
class SlabCandidates:
    """A volume's per-slab 2-D candidates before fusion: slab index, x-y box (model grid
    pixels) and score of each; ``scale`` maps the model grid's xyzxyz to the volume's voxels,
    ``size_xyz`` bounds them. ``grid``: the volume's HU on the model's grid (cubic voxels of
    ``grid_voxel_mm``), where a second look measures the fused boxes, so that its
    measurements mean the same for every scanner's voxel size."""

    z: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    scale: np.ndarray
    size_xyz: np.ndarray
    grid: np.ndarray | None = None
    grid_voxel_mm: float = 0.0
    low_grid: np.ndarray | None = None  # the low-energy volume there, when asked for


def slab_candidates(predict: Predict, volume: Volume, spec: InputSpec,
                    params: DecodeParams, with_low: bool = False) -> SlabCandidates:
    """Every slab through the model, decoded at ``params.score_thresh``; ``with_low``: the
    low-energy volume on the grid too (a dual-energy second look measures it; ValueError
    when the scan has one energy)."""
    grid, low = model_grids(volume, spec)
    low_grid = low
    if with_low and low_grid is None:
        if volume.low is None:
            from detector.second_look import LOW_ENERGY_NEEDED

            raise ValueError(LOW_ENERGY_NEEDED)
        low_grid = resample(volume, spec, volume.low)
    depth, h, w = grid.shape
    zs, boxes, scores = [], [], []
    for start in range(0, depth, SLAB_BATCH):
        x = slabs(grid, spec, start, min(depth, start + SLAB_BATCH), low)
        heat, ltrb = predict(x)
        for i in range(len(x)):
            b, s, _ = decode(heat[i], ltrb[i], params, size_hw=(h, w))
            zs.append(np.full(len(s), start + i, np.int64))
            boxes.append(b)
            scores.append(s)
    zf, yf, xf = zoom_factors(volume, spec)
    d0, h0, w0 = volume.size_dhw
    return SlabCandidates(np.concatenate(zs), np.concatenate(boxes).reshape(-1, 4),
                          np.concatenate(scores), np.array([xf, yf, zf] * 2, np.float32),
                          np.array([w0, h0, d0] * 2, np.float32), grid, float(spec.voxel_mm),
                          low_grid)


#: ``look(cands, boxes, scores) -> (boxes, scores)``: fused boxes on the model's grid
#: (a second look rescoring them, or a hook measuring them)
Look = Callable[[SlabCandidates, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def fuse_candidates(cands: SlabCandidates, min_score: float,
                    fuse_params: FuseParams | None = None,
                    look: Look | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(3-D boxes ``(N, 6)`` in the volume's voxels, scores) of the fused candidates scoring
    at least ``min_score``, passed through ``look`` on the model's grid first, if given."""
    boxes3d, fused = fuse(cands.z, cands.boxes_xyxy, cands.scores, fuse_params or FuseParams())
    keep = fused >= min_score
    boxes3d, fused = boxes3d[keep], fused[keep]
    if look is not None:
        boxes3d, fused = look(cands, boxes3d, fused)
    out = np.clip(boxes3d / cands.scale, 0, cands.size_xyz)
    return out.astype(np.float32), fused.astype(np.float32)


def infer_volume(predict: Predict, volume: Volume, spec: InputSpec, params: DecodeParams,
                 fuse_params: FuseParams | None = None, second_look=None,
                 floor: float | None = None, on_fused=None,
                 with_low: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(3-D boxes ``(N, 6)`` in the volume's voxels, scores) at or above the decode threshold
    (or, without a second look, the fused ``floor`` if given).

    ``second_look`` (`detector.second_look.SecondLook` of kind ``ct``): the fused boxes down to
    its ``min_cnn_score`` are rescored by it, measured on the model's grid, and those whose new
    score reaches ``params.score_thresh`` are returned, best first. ``on_fused(cands, boxes,
    scores)``: called with the fused boxes on the model's grid, before any second look
    (`training.second_look.collect_ct` measures them there; ``with_low``: with the low-energy
    volume on the grid, `SlabCandidates.low_grid`)."""
    with_low = with_low or (second_look is not None and second_look.energies == 2)
    cands = slab_candidates(predict, volume, spec, params, with_low)

    def look(cands, boxes, scores):
        if on_fused is not None:
            on_fused(cands, boxes, scores)
        if second_look is None:
            return boxes, scores
        boxes, scores = second_look.rescore_grid(cands.grid, cands.grid_voxel_mm, boxes, scores,
                                                 cands.low_grid)
        keep = scores >= params.score_thresh
        return boxes[keep], scores[keep]

    if second_look is not None:
        floor = min(params.score_thresh, second_look.min_cnn_score)
    return fuse_candidates(cands, params.score_thresh if floor is None else floor, fuse_params,
                           look)


class VolumeDetector:
    """The CT model on the workstation: ``detect(volume) -> VolumeDetection``.

    ``model`` is a loaded `detector.model.OnnxModel` whose metadata says kind ``ct``.
    """

    def __init__(self, model, min_score: float = MIN_SCORE) -> None:
        if model.info.kind != "ct":
            raise ValueError(f"VolumeDetector: expected a 'ct' model, got {model.info.kind!r}")
        if len(model.info.classes) != 1:  # fusion links boxes regardless of class
            raise ValueError(f"VolumeDetector: expected a one-class CT model, got "
                             f"{model.info.classes}")
        self.model, self.info = model, model.info
        self.params = DecodeParams(stride=self.info.stride, score_thresh=min_score)

    def detect(self, volume: Volume) -> VolumeDetection:
        t0 = time.perf_counter()
        boxes, scores = infer_volume(self.model.predict, volume, self.info.input_spec,
                                     self.params, second_look=self.info.second_look)
        identity = {"name": self.info.name, "version": self.info.version,
                    "sha256": self.model.sha256}
        return VolumeDetection(volume.id, volume.size_dhw, volume.voxel_mm, boxes, scores,
                               np.zeros(len(scores), np.int64), self.info.classes,
                               self.info.alarm_threshold, identity,
                               (time.perf_counter() - t0) * 1e3)
