"""``concealscan train``: train a detector from a recipe in ``configs/train/``."""

from __future__ import annotations

import argparse

REQUIRES = ("torch", "torchvision", "albumentations", "pycocotools", "tensorboard", "yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training recipe (YAML)")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a last.pt checkpoint")
    parser.add_argument("--out-dir", help="override the recipe's out_dir")


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
    print(f"best checkpoint: {best}")
    return 0
