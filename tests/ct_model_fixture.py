"""A tiny seeded, untrained CT model (checkpoint and ONNX export), built once per process."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from model_fixtures import TINY

CT_SPEC = dict(kind="ct", channels=("slice_below", "slice", "slice_above"), voxel_mm=4.0,
               hu_window=(-1000.0, 2000.0))


@functools.cache
def tiny_ct_model(energies: int = 1) -> tuple[Path, Path]:
    """(checkpoint, exported .onnx with manifest); alarm threshold 0.5. ``energies=2``: a
    dual-energy model (six channels)."""
    import torch

    from detector.preprocess import CT_DUAL_ENERGY, InputSpec
    from training import checkpoint
    from training.export import export_onnx
    from training.model import ConcealNet, ModelConfig

    folder = Path(tempfile.mkdtemp(prefix="concealscan-tiny-ct-"))
    torch.manual_seed(0)
    spec = InputSpec(**{**CT_SPEC, "channels": CT_DUAL_ENERGY if energies == 2
                        else CT_SPEC["channels"]})
    model = ConcealNet(ModelConfig(in_channels=spec.num_channels, prior_prob=0.3, **TINY))
    ckpt = folder / "tiny_ct.pt"
    prov = {"config_path": "tests", "data": ["none"], "commit": "test", "created": "now"}
    checkpoint.save(ckpt, model=model, spec=spec, classes=["concealed_organic"],
                    name="tiny_ct", provenance=prov, alarm_threshold=0.5)
    onnx_path = folder / "ct.onnx"
    export_onnx(ckpt, onnx_path, version="0.0.1", trace_hw=(64, 80))
    return ckpt, onnx_path
