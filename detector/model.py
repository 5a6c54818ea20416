"""Load an exported detector: ONNX only, sha256 checked against its manifest, metadata checked.

The model file describes itself (`ModelInfo`, stored as JSON under the ONNX metadata key
``concealscan``); nothing about input layout, normalisation or thresholds is guessed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.errors import UsageError
from detector.preprocess import InputSpec

METADATA_KEY = "concealscan"
FORMAT = "concealscan-onnx-1"
INPUT_NAME, OUTPUT_NAMES = "input", ("heat", "box_ltrb")


class ModelError(UsageError):
    """A model file is missing, not ONNX, altered, or does not describe itself correctly."""


@dataclass(frozen=True)
class ModelInfo:
    """What an exported model says about itself."""

    name: str
    version: str
    classes: tuple[str, ...]
    input_spec: InputSpec
    stride: int
    alarm_threshold: float
    precision: str  # "fp32" or "int8-qdq"
    provenance: dict
    #: `detector.second_look.SecondLook` of a dual or gray model that has one (its metadata entry
    #: ``second_look``; `concealscan second-look`), else None
    second_look: object | None = None

    def __post_init__(self) -> None:
        if not self.classes or not all(isinstance(c, str) and c for c in self.classes):
            raise ValueError(f"classes: expected non-empty names, got {self.classes!r}")
        if self.stride < 1:
            raise ValueError(f"stride: expected >= 1, got {self.stride}")
        if not 0.0 < self.alarm_threshold <= 1.0:
            raise ValueError(f"alarm_threshold: expected (0, 1], got {self.alarm_threshold}")
        if self.precision not in ("fp32", "int8-qdq"):
            raise ValueError(f"precision: expected fp32 or int8-qdq, got {self.precision!r}")

    @property
    def kind(self) -> str:
        return self.input_spec.kind

    def to_dict(self) -> dict:
        extra = {} if self.second_look is None else {"second_look": self.second_look.to_dict()}
        return {**extra, "format": FORMAT, "name": self.name, "version": self.version,
                "classes": list(self.classes), "input": self.input_spec.to_dict(),
                "stride": self.stride, "alarm_threshold": self.alarm_threshold,
                "precision": self.precision, "provenance": self.provenance,
                "outputs": {"heat": "(N, K, H/stride, W/stride) class probabilities",
                            "box_ltrb": "(N, 4, H/stride, W/stride) input pixels from the "
                                        "cell centre to the left, top, right, bottom edges"}}

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        if d.get("format") != FORMAT:
            raise ValueError(f"metadata format: expected {FORMAT!r}, got {d.get('format')!r}")
        second_look = None
        if d.get("second_look") is not None:
            from detector.second_look import SecondLook

            second_look = SecondLook.from_dict(d["second_look"])
            if d["input"].get("kind") != second_look.kind:
                raise ValueError(f"second_look: measures {second_look.kind} scans but the "
                                 f"model takes {d['input'].get('kind')} ones")
        return cls(name=str(d["name"]), version=str(d["version"]),
                   classes=tuple(d["classes"]), input_spec=InputSpec.from_dict(d["input"]),
                   stride=int(d["stride"]), alarm_threshold=float(d["alarm_threshold"]),
                   precision=str(d["precision"]), provenance=dict(d["provenance"]),
                   second_look=second_look)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.stem + ".manifest.json")


def write_manifest(model_path: str | Path, info: ModelInfo) -> Path:
    data = Path(model_path).read_bytes()
    manifest = {"file": Path(model_path).name, "sha256": sha256_of(data), "bytes": len(data),
                "name": info.name, "version": info.version, "kind": info.kind,
                "precision": info.precision}
    out = manifest_path(model_path)
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def read_verified(path: str | Path) -> tuple[bytes, str]:
    """The model's bytes and sha256, after checking suffix, manifest and checksum."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"{path}: only .onnx models are loaded on the workstation")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise ModelError(f"{path}: manifest {mpath.name} is missing; re-export the model")
    try:
        manifest = json.loads(mpath.read_text())
        expected = str(manifest["sha256"])
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{mpath}: unreadable manifest ({exc})") from exc
    data = path.read_bytes()
    digest = sha256_of(data)
    if digest != expected:
        raise ModelError(f"{path}: sha256 {digest} does not match its manifest ({expected}); "
                         "the file was altered or is not the exported model")
    return data, digest


def check_manifest_identity(path: str | Path, info: ModelInfo) -> None:
    """The manifest's name, version, kind and precision must be the model's own: a matching
    sha256 beside another model's identity means the manifest was edited or mixed up."""
    manifest = json.loads(manifest_path(path).read_text())
    own = {"name": info.name, "version": info.version, "kind": info.kind,
           "precision": info.precision}
    for key, value in own.items():
        if key in manifest and str(manifest[key]) != value:
            raise ModelError(f"{path}: manifest says {key} {manifest[key]!r} but the model's "
                             f"metadata says {value!r}; the manifest belongs to another model")


def info_from_metadata(meta: dict[str, str], where: str) -> ModelInfo:
    if METADATA_KEY not in meta:
        raise ModelError(f"{where}: no '{METADATA_KEY}' metadata; not a concealscan export")
    try:
        return ModelInfo.from_dict(json.loads(meta[METADATA_KEY]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{where}: invalid model metadata: {exc}") from exc


class OnnxModel:
    """A verified ONNX detector and its onnxruntime session; ``predict`` is a `Predict`."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        if threads < 1:
            raise ModelError(f"threads: expected >= 1, got {threads}")
        data, self.sha256 = read_verified(path)
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: on the shared 2-core workstation a
        # spinning thread takes the CPU that the service's other requests (and other jobs)
        # need. Measured with `serve --threads 2` under load: 1.5x the scans per second;
        # one inference alone ~8 % slower. No effect with one thread (`detect`'s default).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Without the arena, memory goes back after each scan instead of growing to the
        # largest scan seen; measured: lower peak for a detect process, same speed.
        opts.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = info_from_metadata(meta, str(path))
        check_manifest_identity(path, self.info)
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or tuple(outputs) != OUTPUT_NAMES:
            raise ModelError(f"{self.path}: expected input {INPUT_NAME!r} and outputs "
                             f"{OUTPUT_NAMES}, got {[i.name for i in inputs]} and {outputs}")
        channels = inputs[0].shape[1]
        if channels != self.info.input_spec.num_channels:
            raise ModelError(f"{self.path}: graph takes {channels} channels but the metadata "
                             f"recipe has {self.info.input_spec.num_channels}")

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, box_ltrb = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        return heat, box_ltrb
