"""The model registry's layout and its read side: which model is promoted now.

The workstation only reads (``serve --model REG``); `training.registry` adds, promotes and
rolls back. Layout::

    REG/versions/VERSION/model.onnx            the exported model
    REG/versions/VERSION/model.manifest.json   its sha256 (checked at every load)
    REG/versions/VERSION/checkpoint.pt         what retraining fine-tunes from
    REG/versions/VERSION/entry.json            version, sha256, metrics, data, parent
    REG/current.json                           {"version": ...}, replaced atomically
    REG/history.jsonl                          every add / promote / rollback, appended
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from detector.errors import UsageError

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class RegistryError(UsageError):
    """The registry is missing, has no promoted model, or a version is unknown."""


def is_registry(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "versions").is_dir()


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise RegistryError(f"model version: expected letters, digits and ._+- (up to 64), "
                            f"got {version!r}")
    return version


def version_dir(reg: Path, version: str) -> Path:
    return Path(reg) / "versions" / check_version(version)


def _read_json(path: Path) -> dict:
    """A registry file's JSON object; a damaged one is a `RegistryError` naming it (a disk
    that filled while it was written, a hand edit), never a traceback."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: damaged registry file ({exc}); restore it from "
                            f"history.jsonl or a backup") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: damaged registry file (expected a JSON object)")
    return data


def read_entry(reg: Path, version: str) -> dict:
    path = version_dir(reg, version) / "entry.json"
    if not path.is_file():
        raise RegistryError(f"{reg}: no model version {version!r}")
    return _read_json(path)


def versions(reg: Path) -> list[dict]:
    """Every entry, oldest first (in the order they were added)."""
    root = Path(reg) / "versions"
    if not root.is_dir():
        raise RegistryError(f"{reg}: not a model registry (no versions/ folder)")
    entries = [_read_json(d / "entry.json")
               for d in root.iterdir() if (d / "entry.json").is_file()]
    return sorted(entries, key=lambda e: (e.get("seq", 0), e.get("added_at", ""), e["version"]))


def current_version(reg: Path) -> str:
    if not is_registry(reg):
        raise RegistryError(f"{reg}: not a model registry (no versions/ folder; "
                            f"'concealscan models add MODEL.onnx --checkpoint CKPT --version V "
                            f"--promote --registry {reg}' starts one)")
    path = Path(reg) / "current.json"
    if not path.is_file():
        raise RegistryError(f"{reg}: no model has been promoted yet "
                            f"(concealscan models promote VERSION --registry {reg})")
    version = _read_json(path).get("version")
    if not isinstance(version, str):
        raise RegistryError(f"{path}: damaged registry file (no version)")
    return check_version(version)


def promoted_model(reg: Path) -> Path:
    """Path of the promoted ``model.onnx``; its sha256 is checked when it is loaded."""
    model = version_dir(reg, current_version(reg)) / "model.onnx"
    if not model.is_file():
        raise RegistryError(f"{reg}: promoted model file {model} is missing")
    return model
