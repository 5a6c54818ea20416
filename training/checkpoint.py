"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them.

Only plain containers, numbers, strings and tensors go in, so `torch.load(weights_only=True)`
reads them back; nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import pickle
import subprocess
import warnings
import zipfile
from pathlib import Path

import torch

from detector.errors import UsageError
from detector.preprocess import InputSpec
from training.model import ConcealNet, ModelConfig

FORMAT = "concealscan-checkpoint-1"


class CheckpointError(UsageError, ValueError):
    """A checkpoint file is missing, unreadable or not ours (the commands exit 64 with it)."""


def git_commit() -> str:
    """The commit that provenance names: ``CONCEALSCAN_COMMIT`` when set (a copy of the tree
    whose git does not know its commit, as on a lent GPU machine), else ``git rev-parse``."""
    if os.environ.get("CONCEALSCAN_COMMIT"):
        return os.environ["CONCEALSCAN_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def provenance(config: dict, config_path: str, data: list[str]) -> dict:
    return {"config_path": str(config_path), "config": config, "data": list(data),
            "commit": git_commit(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def save(path: str | Path, *, model: ConcealNet, spec: InputSpec, classes: list[str],
         name: str, provenance: dict, state: dict | None = None,
         alarm_threshold: float | None = None, metrics: dict | None = None) -> None:
    """Write atomically (temp file + rename) so a killed run never leaves a torn checkpoint."""
    path = Path(path)
    ckpt = {
        "format": FORMAT,
        "name": name,
        "model_config": model.cfg.to_dict(),
        "input_spec": spec.to_dict(),
        "classes": list(classes),
        "model": model.state_dict(),
        "provenance": provenance,
        "alarm_threshold": alarm_threshold,
        "metrics": metrics or {},
        "train_state": state or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict; raises CheckpointError (a ValueError) naming the file when it is
    missing, cannot be read (truncated, not a torch file, objects other than tensors and plain
    values) or is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols: the error says it
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text advises weights_only=False: never here
        raise CheckpointError(f"{path}: not a concealscan checkpoint (not a torch file, or it "
                              "holds objects other than tensors and plain values, which are "
                              "never unpickled)") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or damaged "
                              f"({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a concealscan checkpoint (expected format "
                              f"{FORMAT!r})")
    return ckpt


def stream_key(ckpt: dict) -> int:
    """A number in [1000, 2**31) drawn from the checkpoint's weights: what a run started from
    it keys its data stream by (`optim.new_stream`), so that every stage draws new crops while
    two runs from the same checkpoint (an A/B's arms) draw the same ones."""
    digest = hashlib.sha256()
    for name in sorted(ckpt["model"]):
        digest.update(name.encode())
        digest.update(ckpt["model"][name].detach().cpu().contiguous().numpy().tobytes())
    return 1000 + int.from_bytes(digest.digest()[:8], "big") % (2**31 - 1000)


def build_model(ckpt: dict) -> tuple[ConcealNet, InputSpec]:
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = ModelConfig(**{k: v for k, v in ckpt["model_config"].items() if k in fields})
    model = ConcealNet(cfg)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, InputSpec.from_dict(ckpt["input_spec"])


def check_resumable(ckpt: dict, spec: InputSpec, classes: list[str], model_cfg: ModelConfig
                    ) -> None:
    """ValueError unless a recipe whose input is ``spec``, classes ``classes`` and network
    ``model_cfg`` can continue ``ckpt``: a run's ``last.pt`` (or its ``epoch_NNN.pt`` copy),
    with its training state, of the same kind, input channels and normalisation, classes and
    network. A run does not continue into another model (a CT checkpoint into a colour recipe
    would train on its weights unnoticed)."""
    state = ckpt.get("train_state") or {}
    if "optimizer" not in state or "scheduler" not in state:
        raise ValueError("holds no training state (a best.pt, or a checkpoint rebuilt from "
                         "ONNX): resume from the run's last.pt (or an epoch_NNN.pt), or start "
                         "a new run from this one with 'init_from: CHECKPOINT' in the recipe")
    theirs = dataclasses.asdict(InputSpec.from_dict(ckpt["input_spec"]))
    mine = dataclasses.asdict(spec)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    theirs.update({f"model.{k}": v for k, v in ckpt["model_config"].items() if k in fields})
    theirs["model.widths"] = tuple(theirs.get("model.widths", ()))
    theirs["model.blocks"] = tuple(theirs.get("model.blocks", ()))
    mine.update({f"model.{k}": v for k, v in dataclasses.asdict(model_cfg).items()})
    theirs["classes"], mine["classes"] = list(ckpt.get("classes", [])), list(classes)
    differ = [k for k in mine if theirs.get(k) != mine[k]]
    if differ:
        raise ValueError("is not a run of this recipe: "
                         + ", ".join(f"{k} {_shown(theirs.get(k))} there, {_shown(mine[k])} "
                                     f"here" for k in differ)
                         + f"; resume it with the recipe it was trained with "
                         f"({ckpt.get('provenance', {}).get('config_path', 'its provenance')})")


def _shown(value) -> str:
    return repr(list(value) if isinstance(value, tuple) else value)


STEM = "backbone.stages.0.0.0.weight"  # the first convolution: (out, in_channels, k, k)


def init_weights(model: ConcealNet, spec: InputSpec, ckpt: dict,
                 classes: list[str] | None = None, other_scale: bool = False,
                 channels: dict[str, dict[str, float]] | None = None,
                 widen: bool = False) -> str:
    """Start ``model`` (input ``spec``) from the weights of another run's checkpoint.

    The networks must be the same apart from their input channels. The first convolution's
    weights are copied channel by channel where the two inputs share a channel name (a dual
    model's pseudo-colour "r", "g", "b" from a colour model) and start at zero elsewhere, so
    the new model first computes what the old one did; training then learns the rest.
    ``channels`` makes some of this model's channels from the checkpoint's instead, as
    weighted sums of their weights: ``{"high": {"att": 0.33}, "low": {"att": 0.67}}`` starts
    a dual model from a gray one as if its gray input were that mix of high and low.
    ``widen`` lets this network be wider than the checkpoint's (``widths`` and ``neck_width``
    each at least the checkpoint's, the rest the same): every trained tensor fills the leading
    slice of its wider twin, the new channels keep their fresh initialisation and the weights
    from new channels into old ones start at zero, so the old channels, and with them the
    heat map and boxes, compute what the checkpoint did while the new ones learn (Net2Net's
    function-preserving widening, with zeros instead of copied units).
    Raises ValueError when the networks (or the ``classes``, when given) differ, or their input
    scales unless ``other_scale``. Returns a one-line summary.
    """
    if classes is not None and list(ckpt.get("classes", [])) != list(classes):
        raise ValueError(f"init_from: the checkpoint's classes {ckpt.get('classes')} differ "
                         f"from the recipe's {list(classes)}")
    src_spec = InputSpec.from_dict(ckpt["input_spec"])
    src_cfg = dict(ckpt["model_config"])
    mine = model.cfg.to_dict()
    differ = sorted(k for k in mine if k != "in_channels" and src_cfg.get(k) != mine[k])
    widened = ""
    if widen and differ:
        widened = _check_widening(src_cfg, mine)
        differ = [k for k in differ if k not in WIDENABLE]
    if differ:
        hint = ("; init_widen: true starts a wider network from a narrower one"
                if not widen and set(differ) <= set(WIDENABLE) else "")
        raise ValueError(f"init_from: the checkpoint's network differs in {differ} "
                         f"({', '.join(f'{k}={src_cfg.get(k)} vs {mine[k]}' for k in differ)})"
                         f"{hint}")
    if src_spec.scale != spec.scale and not other_scale:
        raise ValueError(f"init_from: the checkpoint's model ran at scale {src_spec.scale}, "
                         f"this recipe at {spec.scale} (init_from_other_scale: true to mean it)")
    channels = {} if channels is None else channels
    mix = _channel_mix(spec, src_spec, channels)
    if not mix:
        raise ValueError(f"init_from: no input channel in common ({src_spec.channels} vs "
                         f"{spec.channels}); init_channels can make them from its channels")
    state = model.state_dict()
    for name, value in ckpt["model"].items():
        if name not in state:
            raise ValueError(f"init_from: the checkpoint's tensor {name} has no place in this "
                             f"network")
        if name == STEM:
            stem = value.new_zeros((value.shape[0], *state[STEM].shape[1:]))
            for channel, parts in mix.items():
                stem[:, spec.channels.index(channel)] = sum(
                    w * value[:, src_spec.channels.index(src)] for src, w in parts.items())
            value = stem
        state[name] = _embed(name, state[name], value)
    model.load_state_dict(state)
    copied = [c for c in mix if c not in channels]
    made = [f"{c} = " + " + ".join(f"{w:g} {s}" for s, w in mix[c].items())
            for c in mix if c in channels]
    fresh = [c for c in spec.channels if c not in mix]
    rescaled = (f"; trained at scale {src_spec.scale:g}, now {spec.scale:g}"
                if src_spec.scale != spec.scale else "")
    done = ([f"channels {', '.join(copied)} copied"] if copied else []) + made + (
        [f"{', '.join(fresh)} from zero"] if fresh else [])
    return (f"{len(state)} tensors from a {src_spec.kind} model ({ckpt.get('name')}); input "
            + ", ".join(done) + rescaled + widened)


WIDENABLE = ("widths", "neck_width")  # what ``init_weights(widen=True)`` may grow


def _check_widening(src_cfg: dict, mine: dict) -> str:
    """Raise ValueError unless ``mine`` is ``src_cfg`` with some widths grown; returns the
    summary's clause ("; widened ...")."""
    src_w, my_w = list(src_cfg.get("widths", [])), list(mine["widths"])
    if len(src_w) != len(my_w) or any(a < b for a, b in zip(my_w, src_w, strict=True)) or \
            mine["neck_width"] < src_cfg.get("neck_width", 0):
        raise ValueError(f"init_widen: this network must be at least as wide as the "
                         f"checkpoint's everywhere (widths {src_w} -> {my_w}, neck_width "
                         f"{src_cfg.get('neck_width')} -> {mine['neck_width']})")
    return (f"; widened: widths {src_w} -> {my_w}, neck_width {src_cfg.get('neck_width')} -> "
            f"{mine['neck_width']} (new channels fresh, their weights into the old ones zero)")


def _embed(name: str, fresh: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (a trained tensor) in the leading slice of ``fresh`` (its twin in this
    network, as large or larger). In a convolution's weight (out, in, k, k) the columns from
    new input channels into old output channels are zeroed, so old outputs stay as trained."""
    if fresh.shape == value.shape:
        return value
    if fresh.dim() != value.dim() or fresh.shape[2:] != value.shape[2:] or any(
            f < v for f, v in zip(fresh.shape, value.shape, strict=True)):
        raise ValueError(f"init_from: {name} is {tuple(value.shape)} in the checkpoint, "
                         f"{tuple(fresh.shape)} here")
    out = fresh.clone()
    if out.dim() >= 2:
        out[:value.shape[0], value.shape[1]:] = 0
    out[tuple(slice(0, n) for n in value.shape)] = value
    return out


def _channel_mix(spec: InputSpec, src: InputSpec, channels: dict[str, dict[str, float]]
                 ) -> dict[str, dict[str, float]]:
    """For each channel of ``spec`` that starts from ``src``: its weights as a weighted sum of
    ``src``'s channels (a shared name: itself, weight 1)."""
    if not isinstance(channels, dict):
        raise ValueError(f"init_channels: expected {{channel: {{channel: weight}}}}, got "
                         f"{channels!r}")
    for target, parts in channels.items():
        if target not in spec.channels:
            raise ValueError(f"init_channels: {target!r} is not an input channel of this model "
                             f"({list(spec.channels)})")
        if not isinstance(parts, dict) or not parts:
            raise ValueError(f"init_channels.{target}: expected {{channel: weight, ...}}, got "
                             f"{parts!r}")
        for source, weight in parts.items():
            if source not in src.channels:
                raise ValueError(f"init_channels.{target}: {source!r} is not an input channel "
                                 f"of the init_from model ({list(src.channels)})")
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise ValueError(f"init_channels.{target}.{source}: expected a number, got "
                                 f"{weight!r}")
    mix = {c: {c: 1.0} for c in spec.channels if c in src.channels}
    mix.update({c: {s: float(w) for s, w in parts.items()} for c, parts in channels.items()})
    return {c: mix[c] for c in spec.channels if c in mix}


def set_alarm_threshold(path: str | Path, threshold: float, how: str) -> None:
    """Store the operating threshold (and how it was picked) in an existing checkpoint."""
    ckpt = load(path)
    ckpt["alarm_threshold"] = float(threshold)
    ckpt.setdefault("metrics", {})["operating_point"] = how
    tmp = Path(str(path) + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
