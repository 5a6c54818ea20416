"""A second look at each box a model finds: measured in the scan, then scored by trees.

The CNN finds candidate boxes; the second look measures each in the scan itself (size,
attenuation and dual-energy ratio inside the box and against a ring around it, edge strength at
its border, texture inside: 18 numbers, `measure_box`; a gray scan's single attenuation image
stands for the high energy and the 5 low-energy numbers are left out) and a gradient-boosted
tree ensemble, fitted on simulated scans no model trained on (`training.second_look`), turns
those plus the CNN's score into the box's score. A CT model's fused 3-D boxes are measured
in the volume's Hounsfield units instead (extents, HU inside and in a shell around the box,
edges at its faces, the densest voxel near it: 14 numbers, `measure_box_3d`). It rides in
the model file's metadata (`detector.model.ModelInfo.second_look`, under the file's sha256),
so a model either has one or not, and the alarm threshold stored with it is for the rescored
boxes. Plain numpy and OpenCV, no scikit-learn on the workstation; the trees are data
(JSON), never code or pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

FORMAT = "concealscan-second-look-1"
MEASUREMENTS = ("width", "height", "elongation", "high_mean", "high_std", "low_mean",
                "low_std", "low_high_ratio", "high_contrast", "low_contrast",
                "contrast_ratio", "border_gradient", "border_gradient_p90", "inner_gradient",
                "laplacian_abs", "laplacian_std", "high_p10", "high_p90")
#: The classifier's inputs, in order: the CNN's score, then the measurements.
FEATURES = ("cnn_score", *MEASUREMENTS)
#: ... per scan kind: a gray scan has no low energy (its image takes the high one's place).
KIND_FEATURES = {"dual": FEATURES,
                 "gray": tuple(f for f in FEATURES if not f.startswith("low")
                               and f not in ("contrast_ratio",))}
MIN_SIDE = 6  # pixels: a smaller box is not measured (its measurements are NaN)
#: A CT model's fused 3-D boxes, measured in the volume's Hounsfield units (`measure_box_3d`):
#: extents sorted short to long (the packet's pose does not matter), HU inside the central
#: 60 % of the box, in a shell around it, edges at its faces, and the densest voxel near it
#: (metal, whose streaks make look-alikes).
MEASUREMENTS_3D = ("short_mm", "mid_mm", "long_mm", "hu_mean", "hu_std", "hu_p10", "hu_p50",
                   "hu_p90", "shell_mean", "shell_std", "hu_contrast", "border_gradient",
                   "inner_gradient", "near_max")
KIND_FEATURES["ct"] = ("cnn_score", *MEASUREMENTS_3D)
#: ... and, for dual-energy CT scans, the same box in the low-energy volume: its HU in the core
#: and contrast to the shell, and the low-minus-high differences (the effective atomic number
#: the high energy alone cannot tell: plastics and foods from powders).
MEASUREMENTS_3D_LOW = ("low_mean", "low_p50", "low_contrast", "low_minus_high_mean",
                       "low_minus_high_p50", "low_minus_high_contrast")
CT_DUAL_FEATURES = (*KIND_FEATURES["ct"], *MEASUREMENTS_3D_LOW)


LOW_ENERGY_NEEDED = ("this CT model's second look reads dual-energy volumes, and the scan has "
                     "one energy (give the low-energy volume beside it, e.g. NAME_80kvp.npy)")


class SecondLookError(ValueError):
    """A second look's description (the model's metadata) is malformed."""


def scan_maps(high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gradient magnitude, Laplacian of the 1-pixel-blurred image) of a high-energy
    attenuation image: what `measure_box` reads edges and texture from, once per scan."""
    high = np.ascontiguousarray(high, np.float32)
    grad = np.hypot(cv2.Sobel(high, cv2.CV_32F, 1, 0), cv2.Sobel(high, cv2.CV_32F, 0, 1))
    return grad, cv2.Laplacian(cv2.GaussianBlur(high, (0, 0), 1.0), cv2.CV_32F)


def measure_box(high: np.ndarray, low: np.ndarray, bbox, pixel_mm: float = 1.0,
                maps: tuple[np.ndarray, np.ndarray] | None = None) -> list[float] | None:
    """The 18 `MEASUREMENTS` of box ``bbox`` (x, y, w, h in pixels) in the attenuation pair;
    sizes in mm with ``pixel_mm``, in pixels with 1 (the workstation: a scan file need not
    say its pixel size). ``maps``: `scan_maps(high)`. None for a box under `MIN_SIDE`."""
    h_img, w_img = high.shape
    x, y, w, h = (int(round(v)) for v in bbox)
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, w_img), min(y + h, h_img)
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        return None
    # inside: the central 60 % of the box; ring: a band a quarter of the short side wide
    cx1, cy1 = x1 + (x2 - x1) // 5, y1 + (y2 - y1) // 5
    cx2, cy2 = x2 - (x2 - x1) // 5, y2 - (y2 - y1) // 5
    pad = max(4, min(w, h) // 4)
    ox1, oy1 = max(x1 - pad, 0), max(y1 - pad, 0)
    ox2, oy2 = min(x2 + pad, w_img), min(y2 + pad, h_img)
    ring = np.ones((oy2 - oy1, ox2 - ox1), bool)
    ring[y1 - oy1:y2 - oy1, x1 - ox1:x2 - ox1] = False
    ring_high, ring_low = high[oy1:oy2, ox1:ox2][ring], low[oy1:oy2, ox1:ox2][ring]
    in_high, in_low = high[cy1:cy2, cx1:cx2], low[cy1:cy2, cx1:cx2]
    grad, lap = maps if maps is not None else scan_maps(high)
    lap = lap[cy1:cy2, cx1:cx2]
    border = np.concatenate([grad[y1:y2, x1:x1 + 2].ravel(), grad[y1:y2, x2 - 2:x2].ravel(),
                             grad[y1:y1 + 2, x1:x2].ravel(), grad[y2 - 2:y2, x1:x2].ravel()])
    d_high = in_high.mean() - (ring_high.mean() if ring_high.size else 0.0)
    d_low = in_low.mean() - (ring_low.mean() if ring_low.size else 0.0)
    return [w * pixel_mm, h * pixel_mm, max(w, h) / max(1, min(w, h)),
            in_high.mean(), in_high.std(), in_low.mean(), in_low.std(),
            (in_low.mean() + 1e-3) / (in_high.mean() + 1e-3), d_high, d_low,
            (d_low + 1e-3) / (d_high + 1e-3) if abs(d_high) > 1e-3 else 0.0,
            border.mean(), np.percentile(border, 90), grad[cy1:cy2, cx1:cx2].mean(),
            np.abs(lap).mean(), lap.std(), np.percentile(in_high, 10), np.percentile(in_high, 90)]


def box_features(image: np.ndarray, boxes_xyxy: np.ndarray, scores: np.ndarray,
                 kind: str = "dual") -> np.ndarray:
    """(N, len(KIND_FEATURES[kind])) float64: per box its CNN score and its measurements in
    scan ``image`` (dual: (2, H, W) attenuation, high then low; gray: (1, H, W)); sizes in
    pixels; NaN where a box is too small to measure."""
    if kind not in ("dual", "gray"):
        raise ValueError(f"second look: no 2-D measurements for {kind!r} scans (dual or gray; "
                         f"CT boxes: box_features_3d)")
    high = np.asarray(image[0], np.float32)
    low = np.asarray(image[1], np.float32) if kind == "dual" else high
    maps = scan_maps(high) if len(boxes_xyxy) else None
    rows = []
    for (x1, y1, x2, y2), score in zip(boxes_xyxy.tolist(), scores.tolist(), strict=True):
        m = measure_box(high, low, (x1, y1, x2 - x1, y2 - y1), 1.0, maps)
        rows.append([score] + (m if m is not None else [np.nan] * len(MEASUREMENTS)))
    rows = np.array(rows, np.float64).reshape(-1, len(FEATURES))
    return rows[:, [FEATURES.index(f) for f in KIND_FEATURES[kind]]]


def measure_box_3d(hu: np.ndarray, box_xyzxyz, voxel_mm,
                   low: np.ndarray | None = None) -> list[float]:
    """The `MEASUREMENTS_3D` of a 3-D box (x1, y1, z1, x2, y2, z2 in voxels) in volume ``hu``
    (D, H, W) of voxels ``voxel_mm`` (z, y, x), then, with ``low`` (the low-energy volume on
    the same grid), the `MEASUREMENTS_3D_LOW`. A box under a voxel thick is widened to one."""
    d, h, w = hu.shape
    lo = np.floor(np.asarray(box_xyzxyz[:3], np.float64)).astype(int)
    hi = np.ceil(np.asarray(box_xyzxyz[3:], np.float64)).astype(int)
    size = np.array([w, h, d])
    lo = np.clip(lo, 0, size - 1)
    hi = np.clip(np.maximum(hi, lo + 1), 1, size)
    side = hi - lo  # voxels along x, y, z
    mm = np.array(voxel_mm, np.float64)[::-1] * side
    core_lo, core_hi = lo + side // 5, hi - side // 5
    pad = np.maximum(2, side // 4)
    o_lo, o_hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, size)
    region = hu[o_lo[2]:o_hi[2], o_lo[1]:o_hi[1], o_lo[0]:o_hi[0]].astype(np.float32)
    inside = np.zeros(region.shape, bool)
    b_lo, b_hi = lo - o_lo, hi - o_lo
    inside[b_lo[2]:b_hi[2], b_lo[1]:b_hi[1], b_lo[0]:b_hi[0]] = True
    c_lo, c_hi = core_lo - o_lo, core_hi - o_lo
    core = region[c_lo[2]:c_hi[2], c_lo[1]:c_hi[1], c_lo[0]:c_hi[0]]
    shell = region[~inside]
    grads = np.gradient(region) if min(region.shape) > 1 else [np.zeros_like(region)]
    grad = np.sqrt(sum(g * g for g in grads))
    faces = inside.copy()  # the box's outermost voxel layer
    faces[b_lo[2] + 1:b_hi[2] - 1, b_lo[1] + 1:b_hi[1] - 1, b_lo[0] + 1:b_hi[0] - 1] = False
    p10, p50, p90 = np.percentile(core, [10, 50, 90])
    shell_mean = float(shell.mean()) if shell.size else float(core.mean())
    out = [*np.sort(mm).tolist(), float(core.mean()), float(core.std()), float(p10), float(p50),
           float(p90), shell_mean, float(shell.std()) if shell.size else 0.0,
           float(core.mean()) - shell_mean, float(grad[faces].mean()),
           float(grad[c_lo[2]:c_hi[2], c_lo[1]:c_hi[1], c_lo[0]:c_hi[0]].mean()),
           float(region.max())]
    if low is None:
        return out
    low_region = low[o_lo[2]:o_hi[2], o_lo[1]:o_hi[1], o_lo[0]:o_hi[0]].astype(np.float32)
    low_core = low_region[c_lo[2]:c_hi[2], c_lo[1]:c_hi[1], c_lo[0]:c_hi[0]]
    low_shell = low_region[~inside]
    low_contrast = float(low_core.mean()) - (float(low_shell.mean()) if low_shell.size
                                             else float(low_core.mean()))
    diff = low_core - core
    return [*out, float(low_core.mean()), float(np.median(low_core)), low_contrast,
            float(diff.mean()), float(np.median(diff)), low_contrast - out[10]]


def box_features_3d(hu: np.ndarray, voxel_mm, boxes_xyzxyz: np.ndarray,
                    scores: np.ndarray, low: np.ndarray | None = None) -> np.ndarray:
    """(N, len(KIND_FEATURES["ct"])) float64: per fused box its score and `measure_box_3d`;
    with the low-energy volume ``low``, (N, len(CT_DUAL_FEATURES))."""
    rows = [[score, *measure_box_3d(hu, box, voxel_mm, low)]
            for box, score in zip(np.asarray(boxes_xyzxyz).tolist(), np.asarray(scores).tolist(),
                                  strict=True)]
    width = len(KIND_FEATURES["ct"] if low is None else CT_DUAL_FEATURES)
    return np.array(rows, np.float64).reshape(-1, width)


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Gradient-boosted binary trees, all in flat arrays: node k of the ensemble splits on
    ``feature[k]`` at ``threshold[k]`` (x <= threshold, or NaN with ``missing_left``, goes to
    ``left[k]``, else ``right[k]``) or, when ``leaf[k]``, adds ``value[k]``. ``roots``: each
    tree's first node. The probability is the logistic of ``baseline`` plus the leaves'."""

    baseline: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    n_features: int

    def __post_init__(self) -> None:
        n = len(self.feature)
        arrays = (self.threshold, self.missing_left, self.left, self.right, self.leaf,
                  self.value)
        if n == 0 or any(len(a) != n for a in arrays) or len(self.roots) == 0:
            raise SecondLookError("trees: node arrays empty or of different lengths")
        inner = ~self.leaf
        if ((self.roots < 0) | (self.roots >= n)).any():
            raise SecondLookError("trees: a root outside the node arrays")
        nodes = np.flatnonzero(inner)
        starts = np.sort(self.roots)
        ends = np.append(starts[1:], n)  # each node's tree ends before this
        tree_end = ends[np.searchsorted(starts, nodes, side="right") - 1]
        for child in (self.left[inner], self.right[inner]):
            # children come after their parent, in the same tree: no cycles, the walk ends
            if ((child <= nodes) | (child >= tree_end)).any():
                raise SecondLookError("trees: a child index not after its node or outside "
                                      "its tree")
        if ((self.feature[inner] < 0) | (self.feature[inner] >= self.n_features)).any():
            raise SecondLookError(f"trees: a split on a feature outside 0..{self.n_features - 1}")
        if not (np.isfinite(self.value).all() and np.isfinite(self.baseline)):
            raise SecondLookError("trees: non-finite leaf values")

    @classmethod
    def from_dict(cls, d: dict, n_features: int) -> TreeEnsemble:
        try:
            trees = d["trees"]
            keys = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value")
            sizes = [len(t["leaf"]) for t in trees]
            for k, (t, size) in enumerate(zip(trees, sizes, strict=True)):
                if size == 0 or any(len(t[key]) != size for key in keys):
                    raise SecondLookError(f"trees: tree {k}'s node arrays empty or of "
                                          f"different lengths")
            offsets = np.cumsum([0] + sizes[:-1]).astype(np.int64)

            def flat(key, dtype, shift=False):
                parts = [np.asarray(t[key], dtype) for t in trees]
                if shift:  # a tree's child indices count from its first node
                    parts = [p + off for p, off in zip(parts, offsets, strict=True)]
                return np.concatenate(parts) if parts else np.zeros(0, dtype)

            leaf = flat("leaf", bool)
            left, right = flat("left", np.int64, True), flat("right", np.int64, True)
            return cls(float(d["baseline"]), offsets, flat("feature", np.int64),
                       flat("threshold", np.float64), flat("missing_left", bool),
                       np.where(leaf, -1, left), np.where(leaf, -1, right), leaf,
                       flat("value", np.float64), n_features)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SecondLookError):
                raise
            raise SecondLookError(f"trees: malformed ({exc})") from exc

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of ``x`` (N, n_features)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features: expected (N, {self.n_features}), got {x.shape}")
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            inner = ~self.leaf[node]
            if not inner.any():
                break
            v = x[rows, np.where(inner, self.feature[node], 0)]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))


@dataclass(frozen=True)
class SecondLook:
    """What a model's metadata says of its second look, ready to rescore boxes."""

    ensemble: TreeEnsemble = field(compare=False)  # two are equal when their sources are
    min_cnn_score: float
    provenance: dict
    source: dict = field(default_factory=dict, repr=False)  # the entry as read
    kind: str = "dual"  # the scans it measures

    @classmethod
    def from_dict(cls, d: dict) -> SecondLook:
        if d.get("format") != FORMAT:
            raise SecondLookError(f"second look format: expected {FORMAT!r}, "
                                  f"got {d.get('format')!r}")
        kind = d.get("kind", "dual")  # dual 3.19.0's entry predates the field
        if kind not in KIND_FEATURES:
            raise SecondLookError(f"second look kind: expected one of {list(KIND_FEATURES)}, "
                                  f"got {kind!r}")
        features = KIND_FEATURES[kind]
        if kind == "ct" and tuple(d.get("features", ())) == CT_DUAL_FEATURES:
            features = CT_DUAL_FEATURES  # a dual-energy CT second look
        if tuple(d.get("features", ())) != features:
            raise SecondLookError(f"second look features: expected {list(features)} for "
                                  f"{kind} scans, got {d.get('features')}")
        floor = float(d.get("min_cnn_score", -1))
        if not 0.0 <= floor < 1.0:
            raise SecondLookError(f"second look min_cnn_score: expected 0..1, got {floor}")
        return cls(TreeEnsemble.from_dict(d, len(features)), floor,
                   dict(d.get("provenance", {})), d, kind)

    def to_dict(self) -> dict:
        """The metadata entry it was read from (written back unchanged)."""
        return self.source

    @property
    def energies(self) -> int:
        """2 for a CT second look that also measures the low-energy volume, else 1."""
        return 2 if tuple(self.source.get("features", ())) == CT_DUAL_FEATURES else 1

    def rescore(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes, new scores, labels) sorted by the new scores: the boxes the CNN scored at
        least ``min_cnn_score`` in scan ``image`` (of its ``kind``), each scored by the
        ensemble."""
        if self.kind == "ct":
            raise ValueError("second look: a CT model's looks at volumes (rescore_grid)")
        keep = scores >= self.min_cnn_score
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if not len(boxes):
            return boxes, scores.astype(np.float32), labels
        x = box_features(image, boxes, scores, self.kind)
        new = self.ensemble.predict_proba(x).astype(np.float32)
        order = np.argsort(-new, kind="stable")
        return boxes[order], new[order], labels[order]

    def rescore_grid(self, grid: np.ndarray, voxel_mm: float, boxes_xyzxyz: np.ndarray,
                     scores: np.ndarray,
                     low_grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(3-D boxes, new scores) sorted by the new scores: the fused boxes scoring at least
        ``min_cnn_score``, in voxels of the CT model's grid ``grid`` (HU, cubic voxels of
        ``voxel_mm``: `detector.ct_inference.SlabCandidates.grid`; ``low_grid`` the
        low-energy volume there, which a dual-energy second look needs), each measured there
        and scored by the ensemble (a ``ct`` second look)."""
        if self.kind != "ct":
            raise ValueError(f"second look: a {self.kind} model's looks at 2-D scans (rescore)")
        if self.energies == 2 and low_grid is None:
            raise ValueError(LOW_ENERGY_NEEDED)
        keep = scores >= self.min_cnn_score
        boxes, scores = boxes_xyzxyz[keep], scores[keep]
        if not len(boxes):
            return boxes, scores.astype(np.float32)
        x = box_features_3d(grid, (voxel_mm,) * 3, boxes, scores,
                            low_grid if self.energies == 2 else None)
        new = self.ensemble.predict_proba(x).astype(np.float32)
        order = np.argsort(-new, kind="stable")
        return boxes[order], new[order]
