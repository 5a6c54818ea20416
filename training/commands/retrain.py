"""``concealscan retrain``: fine-tune on reviewed scans; promote only if Pd does not drop."""

from __future__ import annotations

import argparse
import secrets
import shutil
import time
from pathlib import Path

REQUIRES = ("torch", "onnx", "pycocotools")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="current",
                        help="registry version to fine-tune from (default: the promoted one)")
    parser.add_argument("--data", required=True, nargs="+", type=Path, metavar="DATASET",
                        help="COCO files or folders with annotations.json (e.g. from "
                             "'concealscan dataset from-reviews'; for a CT model a folder's "
                             "ct/annotations.json)")
    parser.add_argument("--test", required=True, type=Path, metavar="TESTSET",
                        help="the frozen test set both models are compared on (CT: per "
                             "volume)")
    parser.add_argument("--registry", required=True, type=Path, metavar="REG",
                        help="the model registry folder ('concealscan models'); the new "
                             "version is registered there, promoted only if it passes")
    parser.add_argument("--version", help="name of the new version (default: BASE+rTIME-TAG, "
                                          "TAG random: two runs never share a name)")
    parser.add_argument("--work", type=Path,
                        help="scratch folder (default: REG/.work/VERSION, removed once the "
                             "version is registered)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="passes over the data sets (default %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-4,
                        help="learning rate, constant (default %(default)s, below the "
                             "recipes' 3e-4..3e-3: adapt without forgetting)")
    parser.add_argument("--target-pfa", type=float, default=0.05,
                        help="operating point: Pd is compared at this Pfa (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the draws and augmentations (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--new-test-set", action="store_true",
                        help="replace the registry's frozen test set (starts a new series)")
    look = parser.add_mutually_exclusive_group()
    look.add_argument("--second-look-data", nargs="+", type=Path, metavar="DATASET",
                      help="fit the successor's second look (dual, gray, ct) on these sets: "
                           "scans with and without packets that the new model never trained "
                           "on, nor the test set; default: carry the base's trees, if it has "
                           "a second look, over to the new CNN's boxes")
    look.add_argument("--no-second-look", action="store_true",
                      help="the successor is the CNN alone, even where the base has a second "
                           "look")


def run(args: argparse.Namespace) -> int:
    import torch

    from detector import registry as reg_read
    from detector.errors import UsageError
    from training.retrain import RetrainConfig, retrain

    torch.set_num_threads(max(1, args.threads))
    base = reg_read.current_version(args.registry) if args.base == "current" else args.base
    # the time and a random tag: two retrains started in the same second get their own names
    # (and work folders)
    version = args.version or (f"{base}+r{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
                               f"-{secrets.token_hex(2)}")
    try:
        cfg = RetrainConfig(epochs=args.epochs, lr=args.lr, target_pfa=args.target_pfa,
                            seed=args.seed,
                            second_look=("drop" if args.no_second_look else
                                         "refit" if args.second_look_data else "carry"),
                            second_look_data=tuple(args.second_look_data or ()))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    work = args.work or Path(args.registry) / ".work" / version
    result = retrain(args.registry, base, args.data, args.test, version, work, cfg,
                     new_test_set=args.new_test_set)
    if args.work is None:  # its files are in the registry now; a failed run's stay to look at
        shutil.rmtree(work, ignore_errors=True)
    old, new = result["old"], result["new"]
    judged = result.get("judged_against", base)
    if judged != base:
        print(f"{judged} was promoted while {version} trained: judged against it, not {base}")
    print(f"{judged}: Pd {old['pd']:.3f} at Pfa {old['pfa']:.3f} "
          f"(threshold {old['threshold']:.3f})")
    look = f"; second look {new['second_look']}" if "second_look" in new else ""
    print(f"{version}: Pd {new['pd']:.3f} at Pfa {new['pfa']:.3f} "
          f"(threshold {new['threshold']:.3f}) on {new['scans']} test scans{look}")
    if result["promoted"]:
        print(f"promoted {version} (Pd did not drop); serve switches with POST "
              "/api/model/reload, watch --model REGISTRY at its next scan")
    else:
        why = (f"{result['superseded_by']} was promoted meanwhile; judge {version} against it "
               f"with 'concealscan models' or retrain again" if result.get("superseded_by")
               else "its Pfa stays above the target at every threshold"
               if not new["pfa"] <= cfg.target_pfa else "Pd dropped")
        now = result.get("superseded_by") or judged
        print(f"NOT promoted: {why}; {version} is registered but {now} stays current")
    return 0
