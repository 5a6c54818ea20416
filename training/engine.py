"""The training loop as two plain functions: `train_one_epoch` and `evaluate`."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch

from detector.inference import infer
from detector.postprocess import DecodeParams
from detector.preprocess import InputSpec
from detector.report import Progress
from training.loss import LossConfig, detection_loss
from training.metrics import ScanRecord


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops rather than train on garbage."""


def train_one_epoch(model, loader, optimizer, scheduler, device: torch.device, epoch: int,
                    loss_cfg: LossConfig, scaler=None, progress: bool = True,
                    log_every: float | None = None,
                    on_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean losses. Raises `NonFiniteLossError`.

    ``progress``: a `detector.report.Progress` on stderr (a bar, or lines in a log file).
    ``on_step(steps)``: called after each optimiser step with the steps done this epoch."""
    model.train()
    stride = _unwrap(model).cfg.stride
    totals: dict[str, float] = {}
    steps = 0
    with Progress(len(loader), f"epoch {epoch}", "batch", enabled=progress, every=log_every) as bar:
        for images, targets in loader:
            images = images.to(device, non_blocking=True)
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                        else nullcontext())
            with autocast:
                heat_logits, box_ltrb = model(images)
            losses = detection_loss(heat_logits.float(), box_ltrb.float(), targets, stride,
                                    loss_cfg)
            loss = losses["total"]
            if not math.isfinite(loss.item()):
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, step {steps}: "
                    + ", ".join(f"{k}={v.item()}" for k, v in losses.items())
                    + ". Lower the learning rate or check the data for NaN pixels or bad boxes.")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
            scheduler.step()
            steps += 1
            if on_step is not None:
                on_step(steps)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.item())
            bar.set_postfix(loss=f"{totals['total'] / steps:.3f}")
            bar.update()
    return {k: v / max(steps, 1) for k, v in totals.items()}



def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def torch_predict(model, device: torch.device):
    """A `detector.inference.Predict` backed by a torch model (same contract as ONNX)."""
    net = _unwrap(model)

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            heat, ltrb = net.predict(torch.from_numpy(x).to(device))
        return heat.float().cpu().numpy(), ltrb.float().cpu().numpy()

    return predict


def evaluate(predict, dataset, spec: InputSpec, stride: int, score_thresh: float = 0.01,
             progress: bool = True, second_look=None,
             on_scan: Callable | None = None) -> list[ScanRecord]:
    """Run ``predict`` on every scan of ``dataset`` (`CocoScans`-like) through `infer` (with
    the model's ``second_look``, where an exported dual or gray model has one).
    ``on_scan(item, raw)``: called with each scan and its detections while both are at hand
    (`training.second_look.collect` measures the boxes in the scan there)."""
    params = DecodeParams(stride=stride, score_thresh=score_thresh)
    records = []
    with Progress(len(dataset), "evaluating", "scan", enabled=progress) as bar:
        for i in range(len(dataset)):
            item = dataset[i]
            raw = infer(predict, item.scan, spec, params, second_look=second_look)
            records.append(ScanRecord(item.scan.id, item.scan.size_hw, item.boxes_xyxy,
                                      item.labels, raw.boxes_xyxy, raw.scores, raw.labels,
                                      item.objects, item.decoys, item.negatives,
                                      item.decoy_names, item.negative_names))
            if on_scan is not None:
                on_scan(item, raw)
            bar.update()
    return records


def evaluate_torch(model, dataset, spec: InputSpec, device: torch.device,
                   progress: bool = True, run=None) -> list[ScanRecord]:
    """``run`` (default `evaluate`; `training.ct_eval.evaluate_volumes` for CT) in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return (run or evaluate)(torch_predict(model, device), dataset, spec,
                                 _unwrap(model).cfg.stride, progress=progress)
    finally:
        model.train(was_training)
