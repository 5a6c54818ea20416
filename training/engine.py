"""The training loop as two plain functions: `train_one_epoch` and `evaluate`."""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

from detector.inference import infer
from detector.postprocess import DecodeParams
from detector.preprocess import InputSpec
from training.loss import LossConfig, detection_loss
from training.metrics import ScanRecord


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops rather than train on garbage."""


def train_one_epoch(model, loader, optimizer, scheduler, device: torch.device, epoch: int,
                    loss_cfg: LossConfig, scaler=None, progress: bool = True,
                    log_every: float = 300.0) -> dict[str, float]:
    """One pass over ``loader``; returns mean losses. Raises `NonFiniteLossError`.

    ``progress``: a bar on a terminal; where stderr is not one (a log file, nohup), a plain
    line every ``log_every`` seconds instead, with the pace and the time left in the epoch."""
    from tqdm import tqdm

    model.train()
    stride = _unwrap(model).cfg.stride
    totals: dict[str, float] = {}
    steps = 0
    tty = sys.stderr.isatty()
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", file=sys.stderr,
               disable=not (progress and tty), dynamic_ncols=True, leave=False)
    lines = _ProgressLines(epoch, len(loader), log_every) if progress and not tty else None
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else nullcontext())
        with autocast:
            heat_logits, box_ltrb = model(images)
        losses = detection_loss(heat_logits.float(), box_ltrb.float(), targets, stride, loss_cfg)
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
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v.item())
        bar.set_postfix(loss=f"{totals['total'] / steps:.3f}")
        if lines is not None:
            lines.step(steps, totals["total"] / steps)
    return {k: v / max(steps, 1) for k, v in totals.items()}


class _ProgressLines:
    """Training progress as a line every ``every`` seconds, for logs that a bar would fill
    with carriage returns."""

    def __init__(self, epoch: int, total: int, every: float) -> None:
        self.epoch, self.total, self.every = epoch, total, every
        self.start = self.last = time.monotonic()

    def step(self, done: int, loss: float) -> None:
        now = time.monotonic()
        if now - self.last < self.every or done >= self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate
        print(f"epoch {self.epoch}: batch {done}/{self.total}, loss {loss:.3f}, "
              f"{rate:.2f} batches/s, about {left / 60:.0f} min left in this epoch",
              file=sys.stderr, flush=True)


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
             progress: bool = True) -> list[ScanRecord]:
    """Run ``predict`` on every scan of ``dataset`` (`CocoScans`-like) through `infer`."""
    from tqdm import tqdm

    params = DecodeParams(stride=stride, score_thresh=score_thresh)
    records = []
    for i in tqdm(range(len(dataset)), desc="evaluating", unit="scan", file=sys.stderr,
                  disable=not (progress and sys.stderr.isatty()), leave=False):
        item = dataset[i]
        raw = infer(predict, item.scan, spec, params)
        records.append(ScanRecord(item.scan.id, item.scan.size_hw, item.boxes_xyxy,
                                  item.labels, raw.boxes_xyxy, raw.scores, raw.labels,
                                  item.objects, item.decoys, item.negatives,
                                  item.decoy_names, item.negative_names))
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
