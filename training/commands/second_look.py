"""``concealscan second-look``: give an exported dual, gray or CT model a second look at its boxes.

The second look (`detector.second_look`) measures each box the CNN finds in the scan (the dual-
energy pair, a gray scan's one image, a CT volume's Hounsfield units) and rescores it with a
tree ensemble fitted here on a simulated set the model never trained on
(`training.second_look`). It is written into a copy of the model (ONNX metadata, new
version, new manifest); the copy's alarm threshold is for the rescored boxes and must be
picked afresh: ``concealscan evaluate --model OUT --data CALIB...
--target-pfa 0.05``.
"""

from __future__ import annotations

import argparse

from training.second_look import MIN_CNN_SCORE

REQUIRES = ("torch", "sklearn", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="an exported dual, gray or CT model")
    parser.add_argument("--data", required=True, nargs="+", metavar="ANNOTATIONS.json",
                        help="COCO set(s) of scans (CT: volumes) of the model's kind, with "
                             "and without packets, that the model never trained on (e.g. "
                             "data/sim/fit/annotations.json)")
    parser.add_argument("--out", required=True, metavar="OUT.onnx",
                        help="the model with its second look (manifest written beside it)")
    parser.add_argument("--version", required=True, help="version of the written model")
    parser.add_argument("--min-cnn-score", type=float, default=MIN_CNN_SCORE, metavar="S",
                        help="boxes the CNN scores lower are dropped, not looked at "
                             "(default: %(default)s)")
    parser.add_argument("--energies", type=int, choices=(1, 2), default=1,
                        help="CT: 2 also measures each box in the low-energy volume "
                             "(NAME_80kvp.npy beside each; the model then needs dual-energy "
                             "scans); default %(default)s")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from detector.errors import UsageError
    from detector.model import OnnxModel
    from detector.registry import check_version
    from detector.second_look import KIND_FEATURES, SecondLook
    from training.second_look import attach, fit_for_model

    check_version(args.version)
    if not 0.0 <= args.min_cnn_score < 1.0:
        raise UsageError(f"--min-cnn-score: expected 0..1, got {args.min_cnn_score}")
    model = OnnxModel(args.model, threads=args.threads)
    info = model.info
    if info.kind not in KIND_FEATURES:
        raise UsageError(f"{args.model}: a {info.kind!r} model; the second look measures "
                         f"attenuation and needs a 'dual', 'gray' or 'ct' model")
    if info.second_look is not None:
        raise UsageError(f"{args.model}: already has a second look; give it the model it was "
                         f"made from")
    out = Path(args.out)
    if out.resolve() == Path(args.model).resolve():
        raise UsageError(f"--out: {out} is the input model; write a new file")
    if args.energies == 2 and info.kind != "ct":
        raise UsageError(f"--energies 2: for CT models; {args.model} is a {info.kind} model")
    entry = fit_for_model(model, args.data, args.min_cnn_score, energies=args.energies)
    SecondLook.from_dict(entry)  # checked before anything is written
    sets = entry["provenance"]["fitted_on"]
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.model, out)
    attach(out, info, entry, version=args.version)
    n, hits = sum(s["boxes"] for s in sets), sum(s["boxes_on_packets"] for s in sets)
    print(f"second look fitted on {n} boxes ({hits} on packets) from "
          f"{sum(s['scans'] for s in sets)} scans; wrote {out} ({info.name} {args.version})")
    print(f"its alarm threshold is a placeholder (0.5); pick it before use:\n"
          f"  concealscan evaluate --model {out} --data CALIB/annotations.json "
          f"--target-pfa 0.05")
    return 0
