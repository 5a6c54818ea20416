"""The model registry's write side: add a version, promote it, roll back. Never deletes.

Layout and the read side live in `detector.registry` (the workstation reads it too). Every
change is appended to ``history.jsonl``; ``current.json`` is replaced atomically, so a
service that re-reads it sees the old model or the new one, never a half-written pointer.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from detector import registry as reg_read
from detector.model import manifest_path, read_verified
from detector.registry import RegistryError
from detector.station.store import write_atomic


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _locked(reg: Path) -> Iterator[None]:
    """One writer at a time (two retrains finishing together must not interleave)."""
    (reg / "versions").mkdir(parents=True, exist_ok=True)
    with open(reg / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _log(reg: Path, event: dict) -> None:
    """One line of the registry's history: when, which account (``by``), what."""
    with open(reg / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"at": _now(), "by": _account(), **event}) + "\n")


def _account() -> str:
    """The login running this process (the OS account: the registry has no users of its
    own); ``uid N`` where it has no name."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return f"uid {os.getuid()}"


# export (and a rebuild from ONNX, scripts/checkpoint_from_onnx.py) give < 1e-5 and < 1e-3 px
PARITY_ATOL = {"heat": 1e-3, "box": 0.05}  # probability, pixels


def check_checkpoint(checkpoint: Path, model: Path) -> None:
    """Refuse a checkpoint that is not the one ``model`` was exported from (or rebuilt from it):
    it must read as ours, be of the model's kind and classes, and compute the model's heat map
    on a test input, since retrain fine-tunes it and registers the result as the model's heir."""
    try:
        import numpy as np
        import torch  # noqa: F401 -- only to say what is missing
    except ImportError as exc:
        raise RegistryError(f"{checkpoint}: checking a checkpoint needs torch: pip install "
                            "'concealscan[train]' (or add the model without --checkpoint)") from exc
    from detector.model import OnnxModel
    from training import checkpoint as ckpt_io
    from training.export import parity

    ckpt = ckpt_io.load(checkpoint)  # missing, damaged or not ours: CheckpointError
    onnx = OnnxModel(model)
    info = onnx.info
    kind, classes = ckpt["input_spec"].get("kind"), list(ckpt.get("classes", []))
    channels = ckpt["model_config"].get("in_channels")
    if (kind, classes, channels) != (info.kind, list(info.classes),
                                     info.input_spec.num_channels):
        raise RegistryError(f"{checkpoint} is not {model}'s checkpoint: kind {kind}, classes "
                            f"{classes}, {channels} input channels against {info.kind}, "
                            f"{list(info.classes)}, {info.input_spec.num_channels}")
    x = np.random.default_rng(0).random((1, channels, 64, 96), dtype=np.float32)
    try:
        d_heat, d_box = parity(ckpt, onnx, x)
    except RuntimeError as exc:  # another network shape
        raise RegistryError(f"{checkpoint} is not {model}'s checkpoint (another network: "
                            f"{str(exc).splitlines()[0]})") from exc
    if d_heat > PARITY_ATOL["heat"] or d_box > PARITY_ATOL["box"]:
        raise RegistryError(f"{checkpoint} is not {model}'s checkpoint: on a test input their "
                            f"outputs differ by up to {d_heat:.3g} in heat and {d_box:.3g} px in "
                            "boxes (export gives < 1e-5 and < 1e-3)")


def add_version(reg: Path, version: str, model: Path, checkpoint: Path | None, *,
                metrics: dict, data: list[str], parent: str | None = None,
                note: str = "", promote_over: tuple[str, str] | None = None) -> dict:
    """Copy ``model`` (+ its manifest) and ``checkpoint`` in as ``version``; return the entry.

    ``promote_over=(judged_against, reason)``: promote it in the same step, under the same
    lock, but only if ``judged_against`` is still the current version; when another was
    promoted meanwhile (a second retrain), it is added unpromoted, and the entry's
    ``metrics["promoted"]`` is False with ``metrics["superseded_by"]`` naming that version."""
    reg = Path(reg)
    reg_read.check_version(version)
    _, sha256 = read_verified(model)  # refuse an altered or unmanifested model up front
    if checkpoint is not None:
        check_checkpoint(Path(checkpoint), Path(model))
    with _locked(reg):
        folder = reg_read.version_dir(reg, version)
        if folder.exists():
            raise RegistryError(f"{reg}: version {version!r} already exists (versions are "
                                "never overwritten; pick a new version)")
        staging = folder.with_name(f".adding-{version}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.copyfile(model, staging / "model.onnx")
        manifest = json.loads(manifest_path(model).read_text())
        manifest["file"] = "model.onnx"
        (staging / "model.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if checkpoint is not None:
            shutil.copyfile(checkpoint, staging / "checkpoint.pt")
        # seq orders entries: added_at has one-second resolution and two versions may be
        # added within the same second (a quick retrain)
        seq = 1 + max((e.get("seq", 0) for e in reg_read.versions(reg)), default=0)
        if promote_over is not None:
            judged, _ = promote_over
            now = _current_or_none(reg)
            if now != judged:
                metrics = {**metrics, "promoted": False, "superseded_by": now}
                promote_over = None
        entry = {"version": version, "seq": seq, "sha256": sha256, "added_at": _now(),
                 "parent": parent,
                 "metrics": metrics, "data": list(data), "note": note,
                 "has_checkpoint": checkpoint is not None,
                 "source": {"model": str(model), "checkpoint": str(checkpoint or "")}}
        (staging / "entry.json").write_text(json.dumps(entry, indent=2) + "\n")
        staging.rename(folder)
        read_verified(folder / "model.onnx")
        _log(reg, {"event": "add", "version": version, "sha256": sha256})
        if promote_over is not None:
            _set_current(reg, version)
            _log(reg, {"event": "promote", "version": version, "previous": promote_over[0],
                       "reason": promote_over[1]})
    return entry


def _current_or_none(reg: Path) -> str | None:
    """The promoted version, or None before the first promotion (a damaged current.json
    is still an error)."""
    if not (Path(reg) / "current.json").exists():
        return None
    return reg_read.current_version(reg)


def _set_current(reg: Path, version: str) -> None:
    """Point ``current.json`` at ``version`` after checking its model's sha256 again."""
    entry = reg_read.read_entry(reg, version)
    read_verified(reg_read.version_dir(reg, version) / "model.onnx")
    write_atomic(reg / "current.json", json.dumps({"version": version, "sha256": entry["sha256"],
                                                   "promoted_at": _now()}).encode())


def promote(reg: Path, version: str, reason: str) -> bool:
    """Make ``version`` the model services load (``serve --model REG``); False (and nothing
    logged) when it is current already: a second entry would make a later rollback a no-op."""
    reg = Path(reg)
    with _locked(reg):
        previous = _current_or_none(reg)
        if previous == version:
            return False
        _set_current(reg, version)
        _log(reg, {"event": "promote", "version": version, "previous": previous,
                   "reason": reason})
    return True


def promotion_stack(reg: Path) -> list[str]:
    """Promoted versions still in force, oldest first: a rollback pops the newest."""
    path = Path(reg) / "history.jsonl"
    stack: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line) if line.strip() else {}
            if event.get("event") == "promote":
                stack.append(event["version"])
            elif event.get("event") == "rollback":
                stack.pop()
    return stack


def rollback(reg: Path) -> str:
    """Go back to the version promoted before the present one; return it."""
    reg = Path(reg)
    with _locked(reg):
        stack = promotion_stack(reg)
        if len(stack) < 2:
            raise RegistryError(f"{reg}: nothing to roll back to (promoted: {stack or 'none'})")
        target = stack[-2]
        _set_current(reg, target)
        _log(reg, {"event": "rollback", "version": target, "previous": stack[-1]})
    return target
