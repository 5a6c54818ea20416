"""Has a staged model memorised the crops its stages drew? Loss on drawn vs never-drawn crops.

    .venv/bin/python benchmarks/seen_crops.py --config configs/train/gray_more10.yaml \
        --checkpoint runs/gray_more10/last.pt --seen 0 1 --fresh 40 41 --batches 150

The training stream (which scans, which crops, which augmentation) is drawn from the recipe's
``optim.seed`` and the epoch number (`training.data.MixSampler`, `TrainSet`). The checkpoint's
detection loss (eval mode, no gradients) is taken on the first ``--batches`` batches of the
streams of epochs ``--seen`` and of epochs ``--fresh`` (same recipe, same scans, epochs no
stage reached). When stages repeat their epochs' streams, a model that has memorised them
scores lower on the seen streams than on the fresh ones, by more than the spread between
fresh epochs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def stream_loss(net, cfg, train_set, sampler, epoch: int, batches: int) -> float:
    """Mean detection loss of ``net`` over the first ``batches`` batches of stream epoch
    ``epoch`` of the recipe ``cfg``, drawn as training draws it (`training.fit.epoch_loader`)."""
    from training.fit import epoch_loader
    from training.loss import detection_loss

    total, n = 0.0, 0
    with torch.no_grad():
        for images, targets in epoch_loader(cfg, train_set, sampler, epoch):
            heat, box = net(images)
            total += float(detection_loss(heat, box, targets, net.cfg.stride,
                                          cfg.loss)["total"])
            n += 1
            if n == batches:
                break
    return total / n


def main(argv: list[str] | None = None) -> int:
    from training import checkpoint
    from training.config import load_config
    from training.fit import Dist, build_data, input_spec

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the recipe whose stream is drawn")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--seen", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--fresh", type=int, nargs="*", default=[40, 41])
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    cfg.data.cache = False
    net, _ = checkpoint.build_model(checkpoint.load(args.checkpoint))
    net.eval()
    train_set, sampler, _ = build_data(cfg, input_spec(cfg), Dist())
    for group, epochs in (("seen", args.seen), ("fresh", args.fresh)):
        for epoch in epochs:
            loss = stream_loss(net, cfg, train_set, sampler, epoch, args.batches)
            print(f"{group} epoch {epoch}: loss {loss:.4f} over {args.batches} batches",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
