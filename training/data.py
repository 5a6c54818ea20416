"""Training data: COCO sets (from `synth` or real), on-the-fly simulation, and their mixing.

Every scan is read with `detector.read_scan` and turned into network input by
`detector.preprocess`, exactly as on the workstation.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detector.errors import ScanError, UsageError
from detector.preprocess import InputSpec, image_to_input, resize
from detector.readers import ScanRef, read_scan
from detector.scan import Scan
from training.metrics import material_names


@dataclass
class Labelled:
    """One scan with its ground truth in scan pixels."""

    scan: Scan
    boxes_xyxy: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64, index into the class list
    objects: list[dict] = field(default_factory=list)  # per box: host, difficulty, ...
    #: Benign look-alikes (the simulator's shop goods, COCO image field ``benign_packet``) as
    #: (M, 4) xyxy: never targets; crops may centre on them and the object-level loss term
    #: pushes their heat down (`AugmentConfig.decoy_crops`, `LossConfig.decoy_weight`).
    decoys: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    #: Other benign solids of the scene (COCO image field ``benign_object``: plugs, cells,
    #: tubs, ...) as (M, 4) xyxy: negatives for the object-level term when
    #: `AugmentConfig.hard_negatives` is on; crops never centre on them.
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    #: What the look-alikes and the other benign solids are (`training.metrics.material_names`)
    decoy_names: list[str] = field(default_factory=list)
    negative_names: list[str] = field(default_factory=list)


def _xywh_to_xyxy(entries: list[dict]) -> np.ndarray:
    return np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in
                     (d["bbox"] for d in entries)], np.float32).reshape(-1, 4)


@dataclass
class CocoSource:
    """One COCO file; ``weight`` x its length scans are drawn per epoch.

    ``oversample`` (concealment strategy -> factor, e.g. ``{in_can: 3}``) shifts those draws
    toward scans holding a packet of that strategy (the annotations' ``strategy`` field,
    written by `synth`): such a scan is drawn ``factor`` times as often as a plain one (the
    largest factor of its packets), while the source's draws per epoch stay ``round(weight x
    len)``, so an A/B against plain sampling costs the same steps.
    """

    path: str
    weight: float = 1.0
    category_map: dict[str, str] = field(default_factory=dict)  # dataset name -> class name
    oversample: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, factor in self.oversample.items():
            if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
                raise ValueError(f"oversample: factor for {name!r} must be a number > 0, "
                                 f"got {factor!r}")


@dataclass
class SimSource:
    """Scans simulated on the fly by `training.sim.stream.SimStream`."""

    seed: int
    length: int
    config: str | None = None
    weight: float = 1.0


def _files_for_kind(entry: dict, kind: str, root: Path) -> tuple[Path, ...] | None:
    files = entry.get("files")
    if files is None:
        return None
    chosen = files.get(kind)
    if chosen is None:
        return ()
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    return tuple(root / f for f in chosen)


class DataSetError(UsageError, ValueError):
    """An annotations file that cannot be used (missing, not JSON, not COCO); names the file."""


def read_coco(path: Path) -> dict:
    """The object in COCO file ``path``; DataSetError naming it when it is missing, not JSON or
    not an object (a field that is missing is the reader's to name)."""
    if not path.is_file():
        raise DataSetError(f"{path}: annotations file not found")
    try:
        coco = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataSetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(coco, dict):
        raise DataSetError(f"{path}: not a COCO data set (expected an object with images, "
                           f"annotations and categories, got a {type(coco).__name__})")
    return coco


def category_names(path: Path, coco: dict, classes: list[str],
                   category_map: dict[str, str] | None = None,
                   as_negatives: bool = False) -> dict[int, str]:
    """``coco``'s category ids -> names (renamed by ``category_map``, data-set name -> class
    name), checked against the model's ``classes``.

    A set may hold categories the model does not use (they are left out), but every class must
    name one of its categories, unless the set has no annotations at all (scans without
    packets): a class under another name would otherwise train as background, or be counted
    as never present by evaluate. DataSetError naming the file, the classes and the set's
    categories; also for an annotation whose category the set does not list.

    ``as_negatives`` (evaluate): a class the set does not name is simply absent from it, so a
    set labelled for other things (the real scans' guns and knives) measures false alarms."""
    cmap = category_map or {}
    names = {c["id"]: cmap.get(c["name"], c["name"]) for c in coco["categories"]}
    annotations = coco.get("annotations", [])
    if annotations and not as_negatives:
        missing = [c for c in classes if c not in names.values()]
        if missing:
            renamed = f", after category_map {cmap}" if cmap else ""
            raise DataSetError(
                f"{path}: class(es) {missing} of the model's {list(classes)} match no category "
                f"of this set (its categories: {sorted(set(names.values()))}{renamed}); name "
                f"the classes as the set does, or rename its categories (recipe: category_map "
                f"in the data source; evaluate: --category-map SET_NAME=CLASS)")
    if annotations:
        for ann in annotations:
            if ann["category_id"] not in names:
                raise DataSetError(f"{path}: annotation {ann.get('id')} has category_id "
                                   f"{ann['category_id']!r}, which its categories do not list "
                                   f"(ids {sorted(names, key=str)})")
    return names


class CocoScans:
    """Scans of one kind listed in a COCO file, with boxes mapped to ``classes``.

    Entries with a ``files`` dict (what `synth` writes) use ``files[kind]``; others use
    ``file_name`` and are kept only when the file is a scan of ``kind``.
    """

    def __init__(self, path: str | Path, kind: str, classes: list[str],
                 category_map: dict[str, str] | None = None, as_negatives: bool = False) -> None:
        self.path, self.as_negatives = Path(path), as_negatives
        try:
            self._parse(read_coco(self.path), kind, classes, category_map or {})
        except KeyError as exc:
            raise ValueError(f"{self.path}: not a COCO data set (no field {exc})") from exc

    def _parse(self, coco: dict, kind: str, classes: list[str], cmap: dict[str, str]) -> None:
        root = self.path.parent
        names = category_names(self.path, coco, classes, cmap, self.as_negatives)
        self.absent_classes = [c for c in classes if c not in names.values()]
        by_image: dict[int, list[dict]] = {}
        for ann in coco.get("annotations", []):
            if names.get(ann["category_id"]) in classes:
                by_image.setdefault(ann["image_id"], []).append(ann)
        self.kind, self.classes = kind, list(classes)
        self.items: list[tuple[dict, ScanRef, list[dict]]] = []
        self.skipped: list[str] = []
        #: Why scans were left out: the kind read from the file, or "no <kind> file" (an entry
        #: of `synth` listing no file of this kind) -> how many (`left_out`).
        self.skipped_kinds: dict[str, int] = {}
        for entry in coco["images"]:
            files = _files_for_kind(entry, kind, root)
            stem = Path(entry["file_name"]).stem
            scan_id = str(entry.get("scan_id", stem))
            if files is None:
                ref = ScanRef(id=scan_id, files=(root / entry["file_name"],))
                try:
                    scan_kind = read_scan(ref).kind
                except ScanError as exc:  # a set whose images lie elsewhere: say where we look
                    raise DataSetError(f"{self.path}: image {entry.get('id')}: {exc} (file "
                                       f"names are relative to {root}, the annotations "
                                       "file's folder)") from exc
                if scan_kind != kind:
                    self._skip(entry["file_name"], scan_kind)
                    continue
            elif not files:
                self._skip(entry["file_name"], f"no {kind} file")
                continue
            else:
                ref = ScanRef(id=scan_id, files=files)
            anns = [dict(a, label=classes.index(names[a["category_id"]]))
                    for a in by_image.get(entry["id"], [])]
            self.items.append((entry, ref, anns))
        if not self.items:
            raise ValueError(f"{self.path}: no {kind!r} scans with usable entries "
                             f"({len(self.skipped)} of another kind skipped)")

    def _skip(self, file_name: str, why: str) -> None:
        self.skipped.append(file_name)
        self.skipped_kinds[why] = self.skipped_kinds.get(why, 0) + 1

    def left_out(self) -> str | None:
        """One line saying how many scans of the file were left out and why (a model reads
        scans of its own kind only), or None when none were: a set judged or trained on in
        part must say so, not look whole."""
        if not self.skipped:
            return None
        why = ", ".join(f"{k}: {n}" for k, n in sorted(self.skipped_kinds.items()))
        return (f"{self.path}: {len(self.skipped)} of {len(self.skipped) + len(self.items)} "
                f"scans left out ({why}): a {self.kind!r} model reads {self.kind} scans only")

    def say_left_out(self) -> str | None:
        """`left_out` as a note on stderr, where there is one; that line (or None)."""
        if line := self.left_out():
            print(f"note: {line}", file=sys.stderr)
        return line

    def __len__(self) -> int:
        return len(self.items)

    def draw_weights(self, oversample: dict[str, float]) -> np.ndarray:
        """Per scan, how often `MixSampler` draws it relative to a plain scan: the largest
        ``oversample`` factor among its packets' strategies, else 1."""
        found = {a.get("strategy") for _, _, anns in self.items for a in anns}
        missing = sorted(set(oversample) - found)
        if missing:
            known = sorted(str(s) for s in found if s is not None)
            raise UsageError(f"{self.path}: oversample names strategies no packet here has: "
                             f"{missing} (strategies in this file: {known or 'none'})")
        return np.array([max([float(oversample.get(a.get("strategy"), 1.0)) for a in anns],
                             default=1.0) for _, _, anns in self.items])

    def __getitem__(self, i: int) -> Labelled:
        entry, ref, anns = self.items[i]
        scan = read_scan(ref)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                           a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([a["label"] for a in anns], np.int64)
        objects = [{k: a.get(k) for k in ("host", "difficulty", "material", "strategy")}
                   for a in anns]
        decoys, others = entry.get("benign_packet", []), entry.get("benign_object", [])
        return Labelled(scan, boxes, labels, objects, _xywh_to_xyxy(decoys),
                        _xywh_to_xyxy(others), material_names(decoys),
                        material_names(others))


class SimScans:
    """`SimStream` samples as `Labelled` scans of one kind (class 0 = concealed organic)."""

    def __init__(self, source: SimSource, kind: str) -> None:
        from training.sim.stream import SimStream

        self.stream = SimStream(source.config, source.seed)
        self.length, self.kind = source.length, kind

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Labelled:
        s = self.stream[i]
        if self.kind == "dual":
            image, bits = np.stack([s.att_high, s.att_low]).astype(np.float32), 16
        elif self.kind == "gray":
            image, bits = np.asarray(s.gray_att, np.float32)[None], 8  # from the 8-bit view
        else:
            image, bits = np.ascontiguousarray(np.asarray(s.color).transpose(2, 0, 1)), 8
        scan = Scan(id=f"sim{i}", kind=self.kind, image=image, sources=("<sim>",),
                    bit_depth=bits)
        boxes = np.asarray(s.boxes_xyxy, np.float32).reshape(-1, 4)
        objects = [{k: a.get(k) for k in ("host", "difficulty", "material", "strategy")}
                   for a in s.annotations]
        return Labelled(scan, boxes, np.zeros(len(boxes), np.int64), objects)


class TrainSet(torch.utils.data.Dataset):
    """Concatenated sources, augmented and preprocessed into ``(input, target)`` pairs."""

    def __init__(self, sources: list, spec: InputSpec, augment=None, seed: int = 0,
                 cache: bool = False, decoy_crops: bool = False,
                 hard_negatives: bool = False, cache_dir: str | Path | None = None) -> None:
        self.sources, self.spec, self.augment = sources, spec, augment
        # Look-alikes ride through augmentation: crops may centre on them, and the targets
        # carry those left in the crop as "decoys" (for `LossConfig.decoy_weight`). With
        # ``hard_negatives`` the scene's other benign solids (and the look-alikes, also
        # without ``decoy_crops``) ride along too, as decoys no crop centres on.
        self.decoy_crops, self.hard_negatives = decoy_crops, hard_negatives
        self.offsets = np.cumsum([0] + [len(s) for s in sources])
        self.seed, self.epoch = seed, 0
        # index -> (resized image, boxes, labels, bit depth, look-alikes, other benign
        # solids); COCO sources only
        # (a simulated source is a stream: caching it would only hold memory).
        self._cache: dict[int, tuple] | None = {} if cache else None
        # With ``cache_dir`` the cache is files there instead, one per scan, shared by the
        # DataLoader's worker processes and kept across epochs (a dict per worker would be
        # decoded again by every worker, every epoch). Put it in memory (/dev/shm).
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self._cache = None

    def set_epoch(self, epoch: int) -> None:
        """Augmentation is seeded by (seed, epoch, index): the same with any worker count and
        after a resume. Call before the epoch's DataLoader workers start."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray,
                                     np.ndarray]:
        """Scan ``i`` resized to the model's scale, with its boxes, labels, bit depth,
        look-alike (decoy) boxes and other benign solids' boxes.

        With the cache on, every epoch (the first too) sees the float16-rounded attenuation,
        so a resumed run, which starts with an empty cache, sees what it would have seen."""
        if self.cache_dir is not None:
            return self._load_shared(i)
        if self._cache is None or i not in self._cache:
            entry, cacheable = self._decode(i)
            if self._cache is None or not cacheable:
                return entry
            self._cache[i] = _half(entry)
        return _full(self._cache[i])

    def _decode(self, i: int) -> tuple[tuple, bool]:
        """Scan ``i`` as `_load` returns it, uncached; and whether it may be cached."""
        src = int(np.searchsorted(self.offsets, i, side="right") - 1)
        item = self.sources[src][i - int(self.offsets[src])]
        scale = np.float32(self.spec.scale)
        return ((resize(item.scan.image, self.spec.scale), item.boxes_xyxy * scale, item.labels,
                 item.scan.bit_depth, item.decoys * scale, item.negatives * scale),
                not isinstance(self.sources[src], SimScans))

    _FIELDS = ("image", "boxes", "labels", "bits", "decoys", "negatives")

    def _load_shared(self, i: int) -> tuple:
        path = self.cache_dir / f"{i}.npz"
        try:
            with np.load(path) as z:
                entry = tuple(z[k] for k in self._FIELDS)
            return _full((*entry[:3], int(entry[3]), *entry[4:]))
        except (OSError, ValueError, KeyError):  # not written yet
            pass
        entry, cacheable = self._decode(i)
        if not cacheable:
            return entry
        entry = _half(entry)
        tmp = path.with_name(f".{i}.{os.getpid()}.npz")
        try:  # written whole, then renamed: a reader never sees half a file
            np.savez(tmp, **dict(zip(self._FIELDS, entry, strict=True)))
            os.replace(tmp, path)
        except OSError:  # no room: this scan stays uncached
            tmp.unlink(missing_ok=True)
        return _full(entry)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, boxes, labels, bits, decoys, negatives = self._load(i)
        if self.augment is not None:
            from training.augment import apply_augment

            self.augment.set_random_seed(int(np.random.default_rng(
                [self.seed, self.epoch, i]).integers(2**31)))
            if self.decoy_crops and len(decoys):
                # Look-alikes ride along as label -1: an object crop then centres on a target
                # or a look-alike, so hard negatives fill the batches; they never become targets.
                boxes = np.concatenate([boxes, decoys])
                labels = np.concatenate([labels, np.full(len(decoys), -1, np.int64)])
            if self.hard_negatives:
                # Label -2: carried for the object term, never a crop's centre (`ObjectCrop`).
                extra = negatives if self.decoy_crops else np.concatenate([decoys, negatives])
                boxes = np.concatenate([boxes, extra])
                labels = np.concatenate([labels, np.full(len(extra), -2, np.int64)])
            image, boxes, labels = apply_augment(self.augment, image, boxes, labels)
            decoys = boxes[labels < 0]
            boxes, labels = boxes[labels >= 0], labels[labels >= 0]
        else:
            decoys = np.zeros((0, 4), np.float32)
        x = image_to_input(image, self.spec, bits)
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
        if self.decoy_crops or self.hard_negatives:  # negatives left in the crop (the object
            # term, `LossConfig.decoy_weight`)
            target["decoys"] = torch.from_numpy(np.ascontiguousarray(decoys, np.float32))
        return torch.from_numpy(x), target


def _half(entry: tuple) -> tuple:
    """The cached form: attenuation rounded to float16 (half the memory)."""
    image = entry[0]
    return (image.astype(np.float16) if image.dtype == np.float32 else image, *entry[1:])


def _full(entry: tuple) -> tuple:
    image = entry[0]
    return (image.astype(np.float32) if image.dtype == np.float16 else image, *entry[1:])


def collate(batch):
    """Stack same-size inputs; targets stay a list (boxes differ per scan)."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


class MixSampler(torch.utils.data.Sampler):
    """Per epoch, ``round(weight * len)`` draws from each source, shuffled, sharded by rank.

    A source without ``draw_weights`` is drawn evenly: every scan once per pass. With them
    (`CocoSource.oversample`), scan i is drawn ``draws x w_i / sum(w)`` times in expectation,
    rounded by systematic sampling (so each count is the floor or the ceiling of that).
    Seeded by (seed, epoch) alone, so a resumed run draws exactly what it would have drawn.
    """

    def __init__(self, lengths: list[int], weights: list[float], seed: int,
                 rank: int = 0, world_size: int = 1,
                 draw_weights: list[np.ndarray | None] | None = None) -> None:
        self.lengths, self.weights = lengths, weights
        self.draw_weights = draw_weights or [None] * len(lengths)
        for n, w in zip(lengths, self.draw_weights, strict=True):
            if w is not None and (len(w) != n or not np.all(np.asarray(w) > 0)):
                raise ValueError(f"draw weights: expected {n} values > 0, got {len(w)}")
        self.seed, self.rank, self.world = seed, rank, world_size
        self.epoch = 0
        total = sum(max(1, round(w * n)) for n, w in zip(lengths, weights, strict=True))
        self.per_rank = total // world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        parts, offset = [], 0
        for n, w, dw in zip(self.lengths, self.weights, self.draw_weights, strict=True):
            draws = max(1, round(w * n))
            if dw is None:
                idx = np.concatenate([rng.permutation(n) for _ in range(-(-draws // n))])
                idx = idx[:draws]
            else:
                edges = np.cumsum(np.asarray(dw, np.float64)) / np.sum(dw) * draws
                points = np.arange(draws) + rng.random()
                idx = np.minimum(np.searchsorted(edges, points, side="right"), n - 1)
            parts.append(idx + offset)
            offset += n
        order = rng.permutation(np.concatenate(parts))
        mine = order[self.rank: self.per_rank * self.world: self.world]
        return iter(mine.tolist())
