"""A training checkpoint rebuilt from an exported ONNX model, for when the run's own is gone.

Export folds each BatchNorm into the convolution before it, so the ONNX file holds, per
convolution, ``W_f`` and ``b_f`` with ``conv_bn(x) = W_f * x + b_f``. Any split back into a
convolution and a BatchNorm with that product computes the same network in eval mode; the
one rebuilt here also behaves like the original in *training* mode, where BatchNorm
normalises with the batch's statistics. For that the running mean ``m`` and variance ``v`` of
each ``W_f * x`` are measured on batches of the recipe's own training crops, and the
BatchNorm becomes ``gamma = sqrt(v + eps)``, ``beta = m + b_f``: in eval mode exactly the
ONNX model; in training mode ``W_f * x + b_f`` up to how far a batch's statistics stray from
``m`` and ``v``. The optimiser's state is not in the ONNX file: training from the result
(``init_from``) starts with a fresh optimiser, as every staged recipe here does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from detector.model import ModelError, info_from_metadata, sha256_of
from training import checkpoint
from training.config import TrainConfig, recipe_config
from training.model import ConcealNet


class RecoverError(ValueError):
    """The ONNX file and the recipe do not describe the same network."""


def _onnx_convs(model_proto) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(node name, weight, bias) of every Conv node, in graph order."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model_proto.graph.initializer}
    convs = []
    for node in model_proto.graph.node:
        if node.op_type != "Conv":
            continue
        if node.input[1] not in inits:
            raise RecoverError(f"Conv {node.name}: its weight is not a stored tensor")
        bias = inits.get(node.input[2]) if len(node.input) > 2 else None
        convs.append((node.name, inits[node.input[1]], bias))
    return convs


def _torch_convs(model: ConcealNet, channels: int) -> list[nn.Conv2d]:
    """The network's convolutions in the order its forward pass calls them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, channels, 64, 64))
    for h in hooks:
        h.remove()
    if len(set(map(id, order))) != len(order):
        raise RecoverError("a convolution runs twice in one forward pass; the order cannot map")
    return order


def _batchnorm_after(model: ConcealNet) -> dict[int, nn.BatchNorm2d]:
    """id(conv) -> the BatchNorm that follows it in its conv_bn block."""
    pairs = {}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential) and len(seq) >= 2 and isinstance(seq[0], nn.Conv2d) \
                and isinstance(seq[1], nn.BatchNorm2d):
            pairs[id(seq[0])] = seq[1]
    return pairs


def load_folded(model: ConcealNet, model_proto, channels: int) -> list[nn.BatchNorm2d]:
    """Put the ONNX file's folded weights into ``model``; each BatchNorm passes the folded
    bias through (eval mode then computes exactly the ONNX model). Returns the BatchNorms."""
    onnx_convs, convs = _onnx_convs(model_proto), _torch_convs(model, channels)
    if len(onnx_convs) != len(convs):
        raise RecoverError(f"the ONNX file has {len(onnx_convs)} convolutions, the recipe's "
                           f"network {len(convs)}")
    bns = _batchnorm_after(model)
    touched = []
    with torch.no_grad():
        for (name, w, b), conv in zip(onnx_convs, convs, strict=True):
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise RecoverError(f"Conv {name}: weight {tuple(w.shape)} in the ONNX file, "
                                   f"{tuple(conv.weight.shape)} in the recipe's network")
            bias = torch.as_tensor(np.array(b if b is not None else np.zeros(w.shape[0]),
                                            dtype=np.float32))
            conv.weight.copy_(torch.as_tensor(np.array(w, dtype=np.float32)))
            bn = bns.get(id(conv))
            if bn is None:
                if conv.bias is None:
                    raise RecoverError(f"Conv {name}: has a bias the recipe's network lacks")
                conv.bias.copy_(bias)
                continue
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            touched.append(bn)
    return touched


def measure_statistics(model: ConcealNet, bns: list[nn.BatchNorm2d], batches) -> int:
    """Per-channel mean and variance of each BatchNorm's input over ``batches`` (the model in
    eval mode, so every layer sees what the ONNX model computes); returns the crops seen."""
    sums: dict[int, list[torch.Tensor]] = {}

    def hook(mod, inputs, _out):
        x = inputs[0].detach().double()
        zeros = torch.zeros(x.shape[1], dtype=torch.float64)
        acc = sums.setdefault(id(mod), [zeros, zeros.clone(), 0])  # sum, sum of squares, n
        acc[0] += x.sum((0, 2, 3))
        acc[1] += (x * x).sum((0, 2, 3))
        acc[2] += x.shape[0] * x.shape[2] * x.shape[3]

    hooks = [bn.register_forward_hook(hook) for bn in bns]
    seen = 0
    model.eval()
    with torch.no_grad():
        for images in batches:
            model(images)
            seen += images.shape[0]
    for h in hooks:
        h.remove()
    if not seen:
        raise RecoverError("no training crops to measure the BatchNorm statistics on")
    with torch.no_grad():
        for bn in bns:
            s, s2, n = sums[id(bn)]
            mean = s / n
            var = (s2 / n - mean * mean).clamp(min=0)
            folded_bias = bn.bias.clone()
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.copy_(mean.float() + folded_bias)
    return seen


def training_batches(cfg: TrainConfig, n_batches: int):
    from training.data import collate
    from training.fit import Dist, build_data, input_spec

    train_set, sampler, _ = build_data(cfg, input_spec(cfg), Dist())
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.optim.batch_size,
                                         sampler=sampler, drop_last=True, num_workers=0,
                                         collate_fn=collate)
    for i, (images, _targets) in enumerate(loader):
        if i >= n_batches:
            break
        yield images


def _probe(channels: int, seed: int = 0) -> np.ndarray:
    """The input the rebuilt network is compared with the ONNX file on."""
    return np.random.default_rng(seed).random((2, channels, 96, 128), dtype=np.float32)


def max_difference(model: ConcealNet, probe: np.ndarray, want: list[np.ndarray]) -> float:
    """Largest absolute difference between the torch model's outputs on ``probe`` and
    ``want``, the ONNX file's."""
    from training.export import _Deployable

    with torch.no_grad():
        got = _Deployable(model.eval())(torch.from_numpy(probe))
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(want, got, strict=True))


def recover(onnx_path: Path, out: Path, *, recipe: Path | None = None,
            data: list[str] | None = None, batches: int = 50, tolerance: float = 1e-3) -> dict:
    """Write ``out``, a checkpoint rebuilt from ``onnx_path``; returns a summary."""
    import onnx
    import onnxruntime as ort

    raw = Path(onnx_path).read_bytes()
    proto = onnx.load_from_string(raw)
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        info = info_from_metadata(meta, str(onnx_path))
    except ModelError as exc:
        raise RecoverError(str(exc)) from exc
    recipe = Path(recipe or info.provenance.get("config_path", ""))
    if not recipe.is_file():
        raise RecoverError(f"{onnx_path}: its recipe {recipe} is not here (name one with "
                           "--recipe)")
    cfg = recipe_config(recipe, data)
    spec = info.input_spec
    channels = len(spec.channels)
    cfg.model.in_channels = channels
    model = ConcealNet(cfg.model)
    bns = load_folded(model, proto, channels)
    probe = _probe(channels)
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: probe})

    def check(stage: str) -> float:
        diff = max_difference(model, probe, want)
        if diff > tolerance:
            raise RecoverError(f"{onnx_path}: the rebuilt network differs from the ONNX file "
                               f"by {diff:.2g} {stage} (tolerance {tolerance:g})")
        return diff

    check("with the folded weights")  # before spending time on the statistics
    seen = measure_statistics(model, bns, training_batches(cfg, batches))
    diff = check("with the BatchNorms re-split")
    digest = sha256_of(raw)
    threshold, note = info.alarm_threshold, ""
    if info.second_look is not None:
        # the checkpoint is the CNN alone: its own threshold, not the second look's
        threshold = float(info.second_look.provenance.get("cnn", {}).get("alarm_threshold",
                                                                          0.5))
        note = (f"; its second look is not in the checkpoint (the CNN's own threshold "
                f"{threshold:.4f}; run concealscan second-look on what is exported from it)")
    prov = {**info.provenance, "recovered_from": {
        "onnx": str(onnx_path), "sha256": digest, "name": info.name, "version": info.version,
        "recipe": str(recipe), "statistics_crops": seen,
        "statistics_data": [s.path for s in cfg.data.train]}}
    checkpoint.save(out, model=model, spec=spec, classes=list(info.classes), name=info.name,
                    provenance=prov, alarm_threshold=threshold,
                    metrics={"recovered_max_difference": diff})
    summary = {"out": str(out), "model": f"{info.name} {info.version}", "recipe": str(recipe),
               "batchnorms": len(bns), "crops": seen, "max_difference": diff}
    print(f"{out}: {info.name} {info.version} rebuilt from {onnx_path} ({len(bns)} BatchNorms "
          f"re-split on {seen} training crops; outputs within {diff:.1g} of the ONNX file)"
          f"{note}", file=sys.stderr)
    return summary
