"""Rebuild a training checkpoint from an exported ONNX model (training/recover.py says how).

    python scripts/checkpoint_from_onnx.py detector/models/dual.onnx --out runs/dual_3.5.0.pt \
        --data data/sim/train/annotations.json

The result starts a new recipe (``init_from``) where the bundled model stands when the run
that made it is gone (runs/ is not in git). The recipe defaults to the one the model records
(its provenance ``config_path``); its training crops, or those of ``--data``, set the
BatchNorm statistics. Exit status: 0 written; 1 the file and the recipe do not match.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.recover import RecoverError, recover  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx", type=Path, help="an exported concealscan model (.onnx)")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint to write (.pt)")
    parser.add_argument("--recipe", type=Path,
                        help="training recipe of the same network (default: the model's own)")
    parser.add_argument("--data", nargs="+", metavar="ANNOTATIONS.json",
                        help="COCO sets to draw the statistics crops from (default: the "
                             "recipe's training sets)")
    parser.add_argument("--batches", type=int, default=50,
                        help="training batches to measure BatchNorm statistics on (default 50)")
    args = parser.parse_args(argv)
    try:
        recover(args.onnx, args.out, recipe=args.recipe, data=args.data, batches=args.batches)
    except (RecoverError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
