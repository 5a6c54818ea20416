"""Training crops per second the data loader delivers, with and without the shared scan cache.

    .venv/bin/python benchmarks/loader_throughput.py configs/train/dual_more5.yaml \\
        --data data/sim/val/annotations.json --workers 2 --batches 40

Builds the recipe's training set (or one from ``--data``) as `concealscan train` does and
times ``--batches`` batches through a DataLoader with ``--workers`` processes: uncached, then
with ``data.cache`` (the files that loader processes share) over two epochs, the first filling
the cache and the second reading it. No network: this measures what feeds the GPU (on a lent
GPU machine training is loader-bound, docs/training.md). Arms run one after another in one
process, so compare them as ratios on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.config import recipe_config  # noqa: E402
from training.data import collate  # noqa: E402
from training.fit import Dist, build_data, input_spec, shared_cache_dir  # noqa: E402


def crops_per_second(train_set, sampler, batch: int, workers: int, batches: int,
                     epoch: int) -> float:
    sampler.set_epoch(epoch)
    train_set.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, sampler=sampler,
                                         num_workers=workers, collate_fn=collate,
                                         drop_last=True)
    t0, n = time.perf_counter(), 0
    for i, (images, _) in enumerate(loader):
        n += images.shape[0]
        if i + 1 >= batches:
            break
    return n / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--data", nargs="+", help="COCO sets instead of the recipe's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    cfg = recipe_config(args.recipe, args.data)
    spec = input_spec(cfg)
    plain, sampler, _ = build_data(cfg, spec, Dist())
    print(f"{len(plain)} scans, {args.workers} loader processes, batches of {args.batch}")
    rate = crops_per_second(plain, sampler, args.batch, args.workers, args.batches, 0)
    print(f"uncached:                 {rate:7.1f} crops/s")
    folder = shared_cache_dir("bench")
    try:
        cfg.data.cache = True
        cached, sampler, _ = build_data(cfg, spec, Dist(), folder)
        fill = crops_per_second(cached, sampler, args.batch, args.workers, args.batches, 0)
        again = crops_per_second(cached, sampler, args.batch, args.workers, args.batches, 0)
        print(f"shared cache, filling:    {fill:7.1f} crops/s")
        print(f"shared cache, filled:     {again:7.1f} crops/s  ({again / rate:.2f}x uncached)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
