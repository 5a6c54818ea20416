"""``concealscan train``: train a detector from a recipe in ``configs/train/``."""

from __future__ import annotations

import argparse
import os

REQUIRES = ("torch", "torchvision", "albumentations", "pycocotools", "tensorboard", "yaml")


EPILOG = """\
Writes OUT_DIR/NAME/: last.pt (every epoch), best.pt (best validation AP50, with the alarm
threshold for the recipe's target_pfa), metrics.csv and TensorBoard logs (tb/). Checkpoints
hold only tensors and plain values (loaded with weights_only=True). Export one for the
workstation with 'concealscan export'.

Resume continues exactly (same samples, augmentation and schedule) from last.pt with the
same recipe (a checkpoint of another model, or a best.pt, is refused). Stops early after
optim.patience epochs without a better validation AP50, and at once, with the values, on a
non-finite loss (exit 1). optim.max_minutes plans as many epochs as fit in that time, a tenth
of the way into the first (and again at its end).

Uses CUDA (bf16 autocast) when there is a GPU, else the CPU with optim.threads threads.
Several processes or machines: torchrun --standalone --nproc_per_node=2 -m detector.cli train
--config RECIPE (DistributedDataParallel; gloo on CPUs, NCCL on GPUs).
Recipes, data sets and options: docs/training.md; the bundled models' recipes: docs/models.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, metavar="RECIPE.yaml",
                        help="training recipe (configs/train/*.yaml): data, model, augmentation, "
                             "optimiser")
    parser.add_argument("--resume", metavar="CKPT",
                        help="continue the run from its last.pt (same recipe)")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="write the run under DIR instead of the recipe's out_dir "
                             "(default: runs)")


def run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.engine import NonFiniteLossError
    from training.fit import fit

    cfg = load_config(args.config)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    try:
        best = fit(cfg, args.config, resume=args.resume)
    except NonFiniteLossError as exc:
        print(f"concealscan train: stopped: {exc}")
        return 1
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: rank 0 alone writes checkpoints
        print(f"best checkpoint: {best}")
    return 0
