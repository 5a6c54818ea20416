"""CT training data: volumes listed in a COCO file with ``bbox3d`` labels, and the 3-slice
slabs the CT model trains on (the same `detector.ct_preprocess` slabs the workstation sees).

A slab's targets are the packets' own boxes in its centre slice (``bbox_slices`` from
``concealscan synth --kinds ct``), so a pillow-shaped packet narrows towards its ends as it
does in the image. Every slab holding a packet is used; slabs without one are drawn at
``CtDataConfig.negative_slabs`` of their number per epoch. With ``augment.hard_negatives`` the
benign solids a slab cuts (3-D boxes ``benign_packet`` and ``benign_object``) are the negatives
of the loss's object term, as for 2-D scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detector.ct_preprocess import model_grids, slabs
from detector.errors import UsageError
from detector.preprocess import InputSpec
from detector.report import progress
from detector.volume import Volume
from detector.volume_inputs import VolumeRef, read_input
from detector.volume_readers import attach_low_energy
from training.data import category_names, read_coco
from training.metrics import material_names


@dataclass
class CtDataConfig:
    voxel_mm: float = 4.0  # the model's cubic voxel (volumes are resampled to it)
    hu_window: tuple[float, float] = (-1000.0, 2000.0)  # HU mapped to 0..1
    negative_slabs: float = 0.1  # fraction of the slabs without a packet drawn per epoch
    flip: bool = True  # random left-right and slice-order flips

    def __post_init__(self) -> None:
        self.hu_window = tuple(float(v) for v in self.hu_window)
        if not self.voxel_mm > 0 or not 0 <= self.negative_slabs <= 1:
            raise ValueError(f"data.ct: expected voxel_mm > 0 and negative_slabs in 0..1, got "
                             f"{self.voxel_mm}, {self.negative_slabs}")


@dataclass
class LabelledVolume:
    """One volume and its ground truth in the volume's own voxels."""

    volume: Volume
    boxes_xyzxyz: np.ndarray  # (N, 6) float32
    objects: list[dict]  # per box: host, strategy, material, hu_mean
    slice_boxes: list[list[list[int]]]  # per box: [z, x1, y1, x2, y2] rows
    #: Benign look-alikes (COCO image field ``benign_packet``, their ``bbox3d``), (M, 6)
    lookalikes_xyzxyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))
    #: The scene's other benign solids (``benign_object``, their ``bbox3d``), (K, 6)
    others_xyzxyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))
    lookalike_names: list[str] = field(default_factory=list)  # what each of those is
    other_names: list[str] = field(default_factory=list)


def low_energy_file(path: Path, entry: dict) -> tuple[str, float | None]:
    """(file, kVp) of a COCO entry's low-energy volume: its one ``ct_<kVp>kvp`` file, or
    ``ct_low`` where the tube voltage is not known (station reviews; kVp None)."""
    found = [(f, float(k[3:-3]) if k != "ct_low" else None)
             for k, f in entry.get("files", {}).items()
             if k == "ct_low" or (k.startswith("ct_") and k.endswith("kvp"))]
    if len(found) != 1:
        raise ValueError(f"{path}: image {entry.get('id')} ({entry.get('file_name')}): a "
                         f"dual-energy CT model needs exactly one second-energy volume "
                         f"(files.ct_<kVp>kvp, from synth with ct: {{kvp: [140, 80]}}, or "
                         f"files.ct_low), got "
                         f"{[k for k in entry.get('files', {}) if k != 'ct'] or 'none'}")
    return found[0]


class CtVolumes:
    """CT volumes (``files["ct"]``) of a COCO file; one class, ``concealed_organic``. With
    ``energies=2`` each volume also carries its low-energy volume (`low_energy_file`)."""

    def __init__(self, path: str | Path, classes: list[str], energies: int = 1,
                 category_map: dict[str, str] | None = None, as_negatives: bool = False) -> None:
        self.path, self.energies, self.as_negatives = Path(path), energies, as_negatives
        try:
            self._parse(read_coco(self.path), classes, category_map)
        except KeyError as exc:
            raise ValueError(f"{self.path}: not a CT data set (no field {exc})") from exc

    def _parse(self, coco: dict, classes: list[str], cmap: dict[str, str] | None) -> None:
        names = category_names(self.path, coco, classes, cmap, self.as_negatives)
        self.absent_classes = [c for c in classes if c not in names.values()]
        by_image: dict[int, list[dict]] = {}
        for ann in coco.get("annotations", []):
            if names.get(ann["category_id"]) in classes:
                if "bbox3d" not in ann:
                    raise ValueError(f"{self.path}: annotation {ann.get('id')} has no bbox3d "
                                     f"(a 2-D data set? a CT model needs 3-D boxes)")
                by_image.setdefault(ann["image_id"], []).append(ann)
        self.items = [(e, VolumeRef(str(e.get("scan_id", Path(e["file_name"]).stem)),
                                    self.path.parent / e["files"]["ct"]),
                       by_image.get(e["id"], []))
                      for e in coco["images"] if "ct" in e.get("files", {})]
        if not self.items:
            raise ValueError(f"{self.path}: no CT volumes (entries with files.ct)")
        self.low = [low_energy_file(self.path, e) if self.energies == 2 else None
                    for e, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> LabelledVolume:
        entry, ref, anns = self.items[i]
        volume = read_input(ref)
        if self.low[i] is not None:
            name, kvp = self.low[i]
            volume = attach_low_energy(volume, self.path.parent / name, kvp)
        boxes = np.array([a["bbox3d"] for a in anns], np.float32).reshape(-1, 6)
        objects = [{k: a.get(k) for k in ("host", "strategy", "material", "hu_mean")}
                   for a in anns]
        decoys, benign = ([b for b in entry.get(key, []) if "bbox3d" in b]
                          for key in ("benign_packet", "benign_object"))
        return LabelledVolume(volume, boxes, objects, [slice_rows(a) for a in anns],
                              _boxes3d(decoys), _boxes3d(benign),
                              material_names(decoys), material_names(benign))


def energies_read(spec: InputSpec, second_look=None) -> int:
    """How many energies a CT model's volumes are read with: its network's, or 2 where its
    second look measures the low-energy volume (`detector.second_look.SecondLook.energies`)."""
    return max(spec.ct_energies, second_look.energies if second_look is not None else 1)


def slice_rows(ann: dict) -> list[list[int]]:
    """An annotation's per-slice boxes ``[z, x1, y1, x2, y2]``: its ``bbox_slices`` (synth
    writes them), else its ``bbox3d`` footprint on every slice of its z range (labels from
    elsewhere, e.g. operator reviews, carry only the 3-D box; without this their packets
    would train as background)."""
    if "bbox_slices" in ann:
        return ann["bbox_slices"]
    x1, y1, z1, x2, y2, z2 = ann["bbox3d"]
    return [[z, x1, y1, x2, y2] for z in range(int(np.floor(z1)), int(np.ceil(z2)))]


def _boxes3d(entries: list[dict]) -> np.ndarray:
    return np.array([b["bbox3d"] for b in entries], np.float32).reshape(-1, 6)


#: Slab boxes are widened to at least this (model pixels, just over the heat-map stride of
#: 4) around their centre: the loss only makes a cell positive when its centre lies inside
#: the box, so a packet lying flat, 1-3 voxels thick, would otherwise train as background.
MIN_BOX_PX = 4.5


def _widen(boxes: np.ndarray, min_px: float = MIN_BOX_PX) -> np.ndarray:
    out = boxes.copy()
    for lo, hi in ((0, 2), (1, 3)):
        centre, half = (out[:, lo] + out[:, hi]) / 2, (out[:, hi] - out[:, lo]) / 2
        half = np.maximum(half, min_px / 2)
        out[:, lo], out[:, hi] = centre - half, centre + half
    return out


def _slab_boxes(item: LabelledVolume, z_scale: float, xy_scale: tuple[float, float]) -> dict:
    """Model-grid slice index -> (N, 4) xyxy boxes of the packets in that slice (widened)."""
    out: dict[int, list] = {}
    sx, sy = xy_scale
    for rows in item.slice_boxes:
        for z, x1, y1, x2, y2 in rows:
            out.setdefault(int(z * z_scale), []).append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
    return {z: _widen(np.asarray(b, np.float32)) for z, b in out.items()}


def _slab_negatives(item: LabelledVolume, z_scale: float, xy_scale: tuple[float, float],
                    depth: int) -> dict[int, np.ndarray]:
    """Model-grid slice index -> (K, 4) xyxy boxes of the benign solids (look-alikes and the
    scene's other ones) that slice cuts: their 3-D boxes' footprints, widened like packets'."""
    out: dict[int, list] = {}
    sx, sy = xy_scale
    for x1, y1, z1, x2, y2, z2 in np.concatenate([item.lookalikes_xyzxyz, item.others_xyzxyz]):
        first, last = int(np.floor(z1 * z_scale)), int(np.ceil(z2 * z_scale)) - 1
        for z in range(max(first, 0), min(last, depth - 1) + 1):
            out.setdefault(z, []).append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
    return {z: _widen(np.asarray(b, np.float32)) for z, b in out.items()}


def _int16(grid: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(grid), -32768, 32767).astype(np.int16)


def _reversed_slices(spec: InputSpec) -> list[int]:
    """Channel order of a slab seen with the slice order reversed (each energy's 3 slices)."""
    return [e * 3 + k for e in range(spec.ct_energies) for k in (2, 1, 0)]


class CtSlabSet(torch.utils.data.Dataset):
    """Every slab of every volume as ``(input (C, H, W), {"boxes", "labels"})``.

    ``volumes`` is one `CtVolumes` or a list of them (several training sets). Slabs are
    grouped per set, those with a packet first: ``groups`` holds (with, without) per set, the
    index ranges `training.data.MixSampler` draws from. ``positives`` counts them all.
    """

    def __init__(self, volumes: CtVolumes | list[CtVolumes], spec: InputSpec,
                 flip: bool = True, seed: int = 0, hard_negatives: bool = False) -> None:
        self.spec, self.flip, self.seed, self.epoch = spec, flip, seed, 0
        # The benign solids each slab cuts ride along as the targets' "decoys", the negatives
        # of the loss's object term (`augment.hard_negatives`, as for 2-D scans).
        self.hard_negatives = hard_negatives
        # HU rounded to int16 after resampling: half a HU of error, half the memory.
        self.grids: list[np.ndarray] = []
        self.lows: list[np.ndarray | None] = []
        # (volume, slice, packet boxes or None, benign boxes or None)
        self.items: list[tuple[int, int, np.ndarray | None, np.ndarray | None]] = []
        self.groups: list[tuple[int, int]] = []
        for source in volumes if isinstance(volumes, list) else [volumes]:
            pos, neg = [], []
            for v in progress(range(len(source)), f"loading {source.path}", "volume"):
                item = source[v]
                grid, low = model_grids(item.volume, spec)
                k = len(self.grids)
                self.grids.append(_int16(grid))
                self.lows.append(None if low is None else _int16(low))
                zf, yf, xf = (g / s for g, s in zip(grid.shape, item.volume.size_dhw,
                                                     strict=True))
                boxes = _slab_boxes(item, zf, (xf, yf))
                benign = (_slab_negatives(item, zf, (xf, yf), grid.shape[0])
                          if hard_negatives else {})
                for z in range(grid.shape[0]):
                    (pos if z in boxes else neg).append((k, z, boxes.get(z), benign.get(z)))
            self.groups.append((len(pos), len(neg)))
            self.items += pos + neg
        self.positives = sum(p for p, _ in self.groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        v, z, boxes, decoys = self.items[i]
        grid = self.grids[v]
        x = slabs(grid, self.spec, z, z + 1, self.lows[v])[0]
        boxes = np.zeros((0, 4), np.float32) if boxes is None else boxes.copy()
        decoys = np.zeros((0, 4), np.float32) if decoys is None else decoys.copy()
        if self.flip:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            if rng.random() < 0.5:
                x = x[:, :, ::-1]
                w = grid.shape[2]
                for b in (boxes, decoys):
                    b[:, [0, 2]] = w - b[:, [2, 0]]
            if rng.random() < 0.5:  # slice order: below <-> above, in each energy
                x = x[_reversed_slices(self.spec)]
        target = {"boxes": torch.from_numpy(boxes),
                  "labels": torch.zeros(len(boxes), dtype=torch.int64)}
        if self.hard_negatives:
            target["decoys"] = torch.from_numpy(decoys)
        return torch.from_numpy(np.ascontiguousarray(x)), target


def slab_sampler(train: CtSlabSet, set_weights: list[float], negative_slabs: float, seed: int,
                 rank: int = 0, world: int = 1):
    """`training.data.MixSampler` over ``train``'s groups: each set's slabs with a packet at its
    weight, those without at ``negative_slabs`` of it. An empty group is left out (it holds no
    index, so the others keep their offsets)."""
    from training.data import MixSampler

    groups = [(n, w * share) for (n_pos, n_neg), w in zip(train.groups, set_weights, strict=True)
              for n, share in ((n_pos, 1.0), (n_neg, negative_slabs)) if n > 0]
    return MixSampler([n for n, _ in groups], [w for _, w in groups], seed, rank, world)


def build_ct_data(cfg, spec: InputSpec, dist):
    """(train slab set, sampler, validation volumes) for `training.fit.fit` with kind ``ct``."""
    if not cfg.data.train or cfg.data.sim:
        raise ValueError("kind 'ct': expected data.train COCO files and no data.sim")
    if any(s.oversample for s in cfg.data.train):
        raise UsageError("kind 'ct': data.train[].oversample is for 2-D scans; CT draws "
                         "slabs with and without packets (data.ct.negative_slabs)")
    sources = [CtVolumes(s.path, cfg.classes, spec.ct_energies, s.category_map)
               for s in cfg.data.train]
    train = CtSlabSet(sources, spec, flip=cfg.data.ct.flip, seed=cfg.optim.seed,
                      hard_negatives=cfg.augment.hard_negatives)
    for source, (n_pos, n_neg) in zip(cfg.data.train, train.groups, strict=True):
        if n_pos == 0 or n_neg == 0:
            raise ValueError(f"kind 'ct': training set {source.path} needs slabs with and "
                             f"without packets, got {n_pos} and {n_neg}")
    sampler = slab_sampler(train, [s.weight for s in cfg.data.train],
                           cfg.data.ct.negative_slabs, cfg.optim.seed, dist.rank, dist.world)
    val = (CtVolumes(cfg.data.val.path, cfg.classes, spec.ct_energies,
                     cfg.data.val.category_map) if cfg.data.val else None)
    return train, sampler, val


def spec_for(ct: CtDataConfig, channels: tuple[str, ...] | None = None) -> InputSpec:
    """The CT model's input spec from the recipe's ``data.ct`` section and ``data.channels``
    (default: one energy)."""
    from detector.preprocess import CHANNELS

    return InputSpec(kind="ct", channels=channels or CHANNELS["ct"], voxel_mm=ct.voxel_mm,
                     hu_window=ct.hu_window)
