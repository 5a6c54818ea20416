"""A tiny seeded, untrained CT model (checkpoint and ONNX export), built once per process."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from model_fixtures import TINY

CT_SPEC = dict(kind="ct", channels=("slice_below", "slice", "slice_above"), voxel_mm=4.0,
               hu_window=(-1000.0, 2000.0))


@functools.cache
def tiny_ct_model() -> tuple[Path, Path]:
    """(checkpoint, exported .onnx with manifest); alarm threshold 0.5."""
    import torch

    from detector.preprocess import InputSpec
    from training import checkpoint
    from training.export import export_onnx
    from training.model import ConcealNet, ModelConfig

    folder = Path(tempfile.mkdtemp(prefix="concealscan-tiny-ct-"))
    torch.manual_seed(0)
    model = ConcealNet(ModelConfig(in_channels=3, prior_prob=0.3, **TINY))
    ckpt = folder / "tiny_ct.pt"
    prov = {"config_path": "tests", "data": ["none"], "commit": "test", "created": "now"}
    checkpoint.save(ckpt, model=model, spec=InputSpec(**CT_SPEC), classes=["concealed_organic"],
                    name="tiny_ct", provenance=prov, alarm_threshold=0.5)
    onnx_path = folder / "ct.onnx"
    export_onnx(ckpt, onnx_path, version="0.0.1", trace_hw=(64, 80))
    return ckpt, onnx_path
