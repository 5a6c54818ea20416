"""Export a checkpoint to a self-describing ONNX file (opset 17, dynamic height and width),
optionally INT8 (onnxruntime static QDQ with calibration scans), plus its sha256 manifest."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from detector.model import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAMES,
    ModelInfo,
    OnnxModel,
    write_manifest,
)
from training import checkpoint

OPSET = 17
DEFAULT_THRESHOLD = 0.5  # used only when the checkpoint has no operating point yet


class _Deployable(torch.nn.Module):
    """The traced forward: the network's `predict` (probabilities, box distances)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.predict(x)


def model_info(ckpt: dict, version: str, precision: str = "fp32",
               name: str | None = None) -> ModelInfo:
    from detector.preprocess import InputSpec

    prov = dict(ckpt["provenance"])
    prov["checkpoint_metrics"] = {k: v for k, v in ckpt.get("metrics", {}).items()
                                  if isinstance(v, (int, float, str))}
    threshold = ckpt.get("alarm_threshold")
    # how the threshold was picked: `checkpoint.set_alarm_threshold` says (e.g. retrain's gate
    # on its frozen test set); else training's validation set, or none (the default)
    picked = ckpt.get("metrics", {}).get("operating_point")
    prov["threshold_source"] = (str(picked) if threshold is not None and picked else
                                "validation" if threshold is not None else "default")
    prov.pop("config", None)  # the recipe path and commit identify it; keep metadata small
    return ModelInfo(name=name or ckpt["name"], version=version, classes=tuple(ckpt["classes"]),
                     input_spec=InputSpec.from_dict(ckpt["input_spec"]),
                     stride=int(ckpt["model_config"]["stride"]),
                     alarm_threshold=float(threshold if threshold is not None
                                           else DEFAULT_THRESHOLD),
                     precision=precision, provenance=prov)


def set_metadata(path: str | Path, info: ModelInfo) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info.to_dict())
    model.producer_name, model.model_version = "concealscan", 1
    onnx.save(model, str(path))
    write_manifest(path, info)


def export_onnx(ckpt_path: str | Path | dict, out: str | Path, version: str = "1.0.0",
                trace_hw: tuple[int, int] = (256, 320), name: str | None = None) -> ModelInfo:
    """Trace the checkpoint's network and write ``out`` plus its manifest; the model is
    called ``name`` (default: the run's name). The checkpoint as a path or already loaded
    (`checkpoint.load`)."""
    ckpt = ckpt_path if isinstance(ckpt_path, dict) else checkpoint.load(ckpt_path)
    net, spec = checkpoint.build_model(ckpt)
    example = torch.rand(1, spec.num_channels, *trace_hw)
    torch.onnx.export(
        _Deployable(net), (example,), str(out), opset_version=OPSET, dynamo=False,
        input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
        dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                      "heat": {0: "batch", 2: "heat_h", 3: "heat_w"},
                      "box_ltrb": {0: "batch", 2: "heat_h", 3: "heat_w"}})
    info = model_info(ckpt, version, name=name)
    set_metadata(out, info)
    return info


def calibration_inputs(folder: str | Path, spec, limit: int = 32) -> list[np.ndarray]:
    """Network inputs of up to ``limit`` scans of ``spec``'s kind in ``folder`` (not its
    subfolders), preprocessed the one shared way. ValueError naming the folder when it is not
    one or holds no scan of that kind; `ScanError` naming a scan that cannot be read."""
    from detector.preprocess import model_input
    from detector.readers import discover_scans, read_scan

    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: not a folder (scans of the model's kind, "
                         f"{spec.kind!r}, for INT8 calibration)")
    items, kinds = [], set()
    for ref in discover_scans([folder]):
        scan = read_scan(ref)
        kinds.add(scan.kind)
        if scan.kind == spec.kind:
            items.append(model_input(scan, spec)[None])
        if len(items) >= limit:
            break
    if not items:
        found = f"only {sorted(kinds)} scans" if kinds else "no scans"
        raise ValueError(f"{folder}: no {spec.kind!r} scans for INT8 calibration ({found} "
                         f"there)")
    return items


class _ScanReader:
    """onnxruntime CalibrationDataReader over prepared network inputs."""

    def __init__(self, items: list[np.ndarray]) -> None:
        self.items = items
        self._it = iter(self.items)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}


def quantize_int8(fp32_path: str | Path, out: str | Path, calibration: str | Path,
                  limit: int = 32, inputs: list[np.ndarray] | None = None) -> ModelInfo:
    """Static QDQ INT8 (U8 activations, per-channel S8 weights) from calibration scans in
    folder ``calibration`` (``inputs``: already made from it by `calibration_inputs`)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from detector.model import info_from_metadata

    meta = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
    info = info_from_metadata(meta, str(fp32_path))
    reader = _ScanReader(inputs if inputs is not None else
                         calibration_inputs(calibration, info.input_spec, limit))
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True)
    int8 = ModelInfo(**{**info.__dict__, "precision": "int8-qdq",
                        "provenance": {**info.provenance, "calibration": str(calibration),
                                       "calibration_scans": len(reader.items)}})
    set_metadata(out, int8)
    return int8


def parity(ckpt: str | Path | dict, onnx: str | Path | OnnxModel,
           x: np.ndarray) -> tuple[float, float]:
    """Largest absolute differences (heat, box_ltrb) between torch and onnxruntime on ``x``;
    the checkpoint and model as paths, or as already loaded (`checkpoint.load`, `OnnxModel`)."""
    net, _ = checkpoint.build_model(ckpt if isinstance(ckpt, dict) else checkpoint.load(ckpt))
    with torch.inference_mode():
        heat_t, box_t = net.predict(torch.from_numpy(x))
    onnx = onnx if isinstance(onnx, OnnxModel) else OnnxModel(onnx)
    heat_o, box_o = onnx.predict(x)
    return (float(np.abs(heat_t.numpy() - heat_o).max()),
            float(np.abs(box_t.numpy() - box_o).max()))
