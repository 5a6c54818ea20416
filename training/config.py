"""The training recipe as typed dataclasses, read from ``configs/train/<name>.yaml``.

Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
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


def _build(cls, values, where: str):
    if dataclasses.is_dataclass(values) or values is None:
        return values
    if not isinstance(values, dict):
        raise UsageError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(fields)}")
    nested = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig,
              "augment": AugmentConfig, "optim": OptimConfig, "val": CocoSource,
              "ct": CtDataConfig}
    kwargs = {}
    for key, value in values.items():
        if key in nested and isinstance(value, dict):
            value = _build(nested[key], value, f"{where}.{key}")
        elif key == "train" and cls is DataConfig:
            value = [_build(CocoSource, v, f"{where}.train[{i}]") for i, v in enumerate(value)]
        elif key == "sim" and cls is DataConfig:
            value = [_build(SimSource, v, f"{where}.sim[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, list) and key not in ("classes",):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {exc}") from exc


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
    if cfg.optim.max_minutes < 0:
        raise UsageError(f"{path}: optim.max_minutes must be >= 0 (0 = no budget), got "
                         f"{cfg.optim.max_minutes}")
    if not cfg.data.train and not cfg.data.sim:
        raise UsageError(f"{path}: data.train or data.sim must name at least one source")
    if cfg.augment.hard_negatives and not cfg.loss.decoy_weight:
        raise UsageError(f"{path}: augment.hard_negatives feeds the object term; set "
                         f"loss.decoy_weight > 0 (e.g. 0.3) or drop hard_negatives")
    # Data paths are relative to the working directory, like every other CLI path.
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
