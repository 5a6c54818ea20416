"""Tiny seeded detector checkpoints and their ONNX exports, built once per test process."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

TINY = {"widths": (8, 12, 16, 24, 32), "blocks": (1, 1, 1, 1, 1), "neck_width": 12}


def trained_batchnorm(net, spread: float = 0.2) -> None:
    """Give every BatchNorm of ``net`` statistics and affine weights like a trained one's (not
    the identity a fresh one is), so that tests of weight surgery see them carried over."""
    import torch

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-spread, spread)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-spread / 2, spread / 2)


def tiny_checkpoint(folder: Path, kind: str, seed: int = 0, threshold: float = 0.5) -> Path:
    import torch

    from detector.preprocess import InputSpec
    from training import checkpoint
    from training.model import ConcealNet, ModelConfig

    torch.manual_seed(seed)
    spec = InputSpec.for_kind(kind)
    model = ConcealNet(ModelConfig(in_channels=spec.num_channels, **TINY))
    path = folder / f"tiny_{kind}.pt"
    prov = {"config_path": "tests", "data": ["none"], "commit": "test", "created": "now"}
    checkpoint.save(path, model=model, spec=spec, classes=["concealed_organic"],
                    name=f"tiny_{kind}", provenance=prov, alarm_threshold=threshold)
    return path


@functools.cache
def tiny_models() -> dict[str, Path]:
    """kind -> exported .onnx of an untrained seeded tiny model (threshold 0.5)."""
    from training.export import export_onnx

    folder = Path(tempfile.mkdtemp(prefix="concealscan-tiny-"))
    out = {}
    for kind in ("dual", "gray", "color"):
        ckpt = tiny_checkpoint(folder, kind)
        out[kind] = folder / f"{kind}.onnx"
        export_onnx(ckpt, out[kind], version="0.0.1")
    return out
