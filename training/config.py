"""The training recipe as typed dataclasses, read from ``configs/train/<name>.yaml``.

Unknown keys are errors: a typo must not silently fall back to a default. Every value is
checked against its field's type and its range (`_RANGES`) before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from detector.errors import UsageError
from training.augment import AugmentConfig
from training.ct_data import CtDataConfig
from training.data import CocoSource, SimSource
from training.loss import LossConfig
from training.model import ModelConfig


@dataclass
class DataConfig:
    train: list[CocoSource] = field(default_factory=list)
    val: CocoSource | None = None
    sim: list[SimSource] = field(default_factory=list)  # on-the-fly simulation
    scale: float = 1.0  # scans are resized by this before the network (stored in the model)
    # Keep COCO scans decoded and resized in memory (float16 attenuation, ~0.5 MB per scan at
    # scale 0.5): decoding 16-bit PNGs was half of each CPU training step. With loader
    # processes (optim.workers > 0), files in /dev/shm that all of them share, removed at the end.
    cache: bool = False
    # The network's input channels; default: the kind's current layout (detector.preprocess
    # CHANNELS). Dual models up to 2.2.0 used [high, low, ratio].
    channels: tuple[str, ...] | None = None
    ct: CtDataConfig = field(default_factory=CtDataConfig)  # kind "ct" only (docs/ct.md)


@dataclass
class OptimConfig:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    workers: int = 1
    patience: int = 8  # epochs without a better validation AP50 before stopping
    eval_every: int = 1
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    keep_epochs: bool = False  # also keep epoch_NNN.pt (for resume checks and post-mortems)
    # a time budget: a tenth of the way into the first epoch (and again at its end), the
    # planned epochs are cut to what fits at that pace and the cosine ends there (a lent
    # GPU's lease); 0 = none
    max_minutes: float = 0.0
    # A run started with init_from draws its crops, scans and augmentation from a stream keyed
    # by the checkpoint it starts from, so that a stage does not draw again what the stages
    # before it drew (keyed by seed and epoch alone, every stage's epoch k repeated every other
    # stage's epoch k; docs/training.md). false: seed and epoch alone, as recipes committed
    # before this option were run (to reproduce them exactly).
    new_stream: bool = True


@dataclass
class TrainConfig:
    name: str
    kind: str
    classes: list[str]
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    target_pfa: float | None = 0.05  # operating point picked on the validation set
    # Start from another run's weights (a checkpoint of the same network; docs/training.md).
    # Channels it shares with this model by name are copied, the others start at zero.
    init_from: str | None = None
    # init_from a checkpoint trained at another data.scale: a deliberate change of input
    # resolution (its filters then see every object at another size in pixels); off, so that
    # a recipe whose scale differs by mistake is refused.
    init_from_other_scale: bool = False
    # init_from: this model's input channels made from the checkpoint's, as weighted sums of
    # their first-layer weights, e.g. a dual model from a gray one, {high: {att: 0.33},
    # low: {att: 0.67}} (the gray view is about that mix of the two layers' attenuation).
    # Channels not named here are copied by name or start at zero, as without it.
    init_channels: dict[str, dict[str, float]] | None = None
    # init_from a narrower network of the same layout: this recipe's model.widths and
    # model.neck_width may each be larger than the checkpoint's; the trained weights fill the
    # leading channels and the new ones start so that the model first computes what the
    # checkpoint did (docs/training.md). Off, so that a recipe wider by mistake is refused.
    init_widen: bool = False


_NESTED = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig,
           "augment": AugmentConfig, "optim": OptimConfig, "val": CocoSource, "ct": CtDataConfig}


def _build(cls, values, path: str, keys: str = ""):
    """``cls`` from a recipe mapping (its section ``keys`` of file ``path``): every value of
    the type its field declares, or a UsageError naming the file, the key and the value."""
    where = f"{path}: {keys}" if keys else path
    if dataclasses.is_dataclass(values):
        return values
    if not isinstance(values, dict):
        raise UsageError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(fields)}")
    missing = [n for n, f in fields.items() if n not in values and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise UsageError(f"{where}: missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        at = f"{keys}.{key}" if keys else key
        if key in _NESTED and value is not None:
            value = _build(_NESTED[key], value, path, at)
        elif key in ("train", "sim") and cls is DataConfig:
            if not isinstance(value, list):
                raise UsageError(f"{path}: {at}: expected a list of sources, got {value!r}")
            source = CocoSource if key == "train" else SimSource
            value = [_build(source, v, path, f"{at}[{i}]") for i, v in enumerate(value)]
        else:
            value = _typed(value, hints[key], path, at)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {exc}") from exc


_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _typed(value, hint, path: str, at: str):
    """``value`` as type ``hint`` (bool, int, float, str, X | None, tuple[...], list[...],
    dict[str, ...]); floats may be written as text, since YAML 1.1 (PyYAML) reads ``1e-3``
    as the string "1e-3", and must be finite. UsageError naming the file and the key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _typed(value, hint, path, at)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{path}: {at}: expected a list, got {value!r}")
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            raise UsageError(f"{path}: {at}: expected {len(args)} values, got {value!r}")
        items = [_typed(v, args[i] if fixed else args[0], path, f"{at}[{i}]")
                 for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{path}: {at}: expected a mapping, got {value!r}")
        return {k: _typed(v, args[1], path, f"{at}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):  # a section left empty (``data:``)
        raise UsageError(f"{path}: {at}: expected a mapping, got {value!r}")
    if hint not in _KINDS:
        return value
    if hint is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, hint) and not (hint in (int, float) and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise UsageError(f"{path}: {at}: expected {_KINDS[hint]}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise UsageError(f"{path}: {at}: expected a finite number, got {value!r}")
    return value


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


def _above(low):
    return lambda v: v > low, f"> {low}"


_FRACTION = (lambda v: 0 <= v <= 1, "in 0..1")
_SPAN = (lambda v: 0 < v[0] <= v[1], "[low, high] with 0 < low <= high")
#: Ranges of recipe values (key: (test, what is expected)); their types come from the
#: dataclasses' annotations (`_typed`).
_RANGES = {
    "data.scale": (lambda v: 0.05 <= v <= 4.0, "in 0.05..4"),
    "optim.epochs": _at_least(1), "optim.batch_size": _at_least(1), "optim.lr": _above(0),
    "optim.weight_decay": _at_least(0), "optim.warmup_steps": _at_least(0),
    "optim.workers": _at_least(0), "optim.patience": _at_least(1),
    "optim.eval_every": _at_least(1), "optim.seed": _at_least(0), "optim.threads": _at_least(0),
    "optim.max_minutes": (lambda v: v >= 0, ">= 0 (0 = no budget)"),
    "target_pfa": (lambda v: v is None or 0 < v < 1, "between 0 and 1 (not 0 or 1), or null "
                                                     "for none"),
    # the network's coarsest stage has stride 32: a smaller crop is less than one of its cells
    "augment.crop_size": _at_least(32),
    "augment.scale_range": _SPAN, "augment.thickness_range": _SPAN,
    "augment.noise_photons": _SPAN, "augment.gain_sigma": _at_least(0),
    **{f"augment.{k}": _FRACTION for k in ("object_crop_prob", "min_visibility", "noise_prob",
                                            "blur_prob", "palette_prob", "jpeg_prob")},
    "loss.focal_alpha": _FRACTION, "loss.focal_gamma": _at_least(0),
    "loss.box_weight": _above(0), "loss.centre_cells": _above(0),
    "loss.centre_frac": _at_least(0), "loss.decoy_weight": _at_least(0),
    "model.widths": (lambda v: min(v) >= 1, "every width >= 1"),
    "model.blocks": (lambda v: min(v) >= 0, "every count >= 0"),
    "model.neck_width": _at_least(1), "model.prior_prob": (lambda v: 0 < v < 1, "in (0, 1)"),
    "model.init_box_px": _above(0),
}


def _check_ranges(cfg: TrainConfig, path: Path) -> None:
    for key, (ok, expected) in _RANGES.items():
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if not ok(value):
            raise UsageError(f"{path}: {key}: expected {expected}, got {value!r}")
    if not cfg.classes or not all(c.strip() for c in cfg.classes) or \
            len(set(cfg.classes)) != len(cfg.classes):
        raise UsageError(f"{path}: classes: expected one or more distinct names, got "
                         f"{cfg.classes!r}")
    sources = [(f"data.train[{i}]", s) for i, s in enumerate(cfg.data.train)] + \
        [(f"data.sim[{i}]", s) for i, s in enumerate(cfg.data.sim)]
    for at, source in sources:
        if not source.weight > 0:
            raise UsageError(f"{path}: {at}.weight: expected > 0, got {source.weight!r}")
    for i, source in enumerate(cfg.data.sim):
        if source.length < 1 or source.seed < 0:
            raise UsageError(f"{path}: data.sim[{i}]: expected length >= 1 and seed >= 0, got "
                             f"{source.length} and {source.seed}")


def load_config(path: str | Path) -> TrainConfig:
    from training.sim.config import read_yaml  # missing or not YAML: a usage error naming it

    return parse_config(read_yaml(path), path)


def recipe_config(recipe: str | Path, data: list[str] | None = None) -> TrainConfig:
    """The recipe without its init_from (the run it started from may be gone), its validation
    set or its cache and, with ``data``, drawing its training crops from those COCO sets
    instead: for tools that only need its data pipeline and network (checkpoint rebuilds,
    loader benchmarks)."""
    from training.sim.config import read_yaml

    values = read_yaml(recipe)
    values.pop("init_from", None)
    data_values = values.setdefault("data", {})
    if data:
        data_values["train"] = [{"path": p} for p in data]
    data_values["cache"] = False
    data_values.pop("val", None)  # not used there, and perhaps not made here
    return parse_config(values, recipe)


def parse_config(values: dict, path: str | Path) -> TrainConfig:
    """A recipe's values (as read from ``path``, named in errors) checked and completed."""
    path = Path(path)
    cfg = _build(TrainConfig, values, str(path))
    _check_ranges(cfg, path)
    if cfg.kind not in ("dual", "gray", "color", "ct"):
        raise UsageError(f"{path}: kind must be dual, gray, color or ct, got {cfg.kind!r}")
    cfg.model.num_classes = len(cfg.classes)
    from detector.preprocess import CHANNELS, LAYOUTS

    if cfg.data.channels is not None and cfg.data.channels not in LAYOUTS[cfg.kind]:
        raise UsageError(f"{path}: data.channels for kind {cfg.kind!r}: expected one of "
                         f"{[list(c) for c in LAYOUTS[cfg.kind]]}, got {list(cfg.data.channels)}")
    cfg.model.in_channels = len(cfg.data.channels or CHANNELS[cfg.kind])
    if cfg.init_from is not None and not Path(cfg.init_from).is_file():
        raise UsageError(f"{path}: init_from: checkpoint not found: {cfg.init_from}")
    if not cfg.data.train and not cfg.data.sim:
        raise UsageError(f"{path}: data.train or data.sim must name at least one source")
    if cfg.augment.hard_negatives and not cfg.loss.decoy_weight:
        raise UsageError(f"{path}: augment.hard_negatives feeds the object term; set "
                         f"loss.decoy_weight > 0 (e.g. 0.3) or drop hard_negatives")
    # Data paths are relative to the working directory, like every other CLI path.
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
