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
    parser.add_argument("--min-cnn-score", type=float, default=0.02, metavar="S",
                        help="boxes the CNN scores lower are dropped, not looked at "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")


def run(args: argparse.Namespace) -> int:
    import shutil
    from dataclasses import replace
    from pathlib import Path

    import numpy as np

    from detector.errors import UsageError
    from detector.model import OnnxModel
    from detector.second_look import KIND_FEATURES, SecondLook
    from training.ct_data import CtVolumes
    from training.data import CocoScans
    from training.export import set_metadata
    from training.second_look import (
        FIT,
        collect,
        collect_ct,
        data_summary,
        fit,
        hit_labels,
        second_look_dict,
    )

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
    xs, ys, sets = [], [], []
    for path in args.data:
        try:
            data = (CtVolumes(path, list(info.classes), info.input_spec.ct_energies)
                    if info.kind == "ct" else CocoScans(path, info.kind, list(info.classes)))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if info.kind == "ct":
            records, x = collect_ct(model.predict, data, info.input_spec, info.stride,
                                    args.min_cnn_score)
        else:
            records, x, _ = collect(model.predict, data, info.input_spec, info.stride,
                                    args.min_cnn_score)
        y = hit_labels(records, info.kind)
        xs.append(x)
        ys.append(y)
        sets.append(data_summary(Path(path), records, y))
    x, y = np.concatenate(xs), np.concatenate(ys)
    clf = fit(x, y)
    entry = second_look_dict(clf, args.min_cnn_score,
                             {"fitted_on": sets, "classifier": {"sklearn":
                                                                "HistGradientBoostingClassifier",
                                                                **FIT},
                              "cnn": {"name": info.name, "version": info.version,
                                      "sha256": model.sha256,
                                      "alarm_threshold": info.alarm_threshold}}, info.kind)
    second_look = SecondLook.from_dict(entry)  # checked before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.model, out)
    new = replace(info, version=args.version, second_look=second_look,
                  alarm_threshold=0.5,
                  provenance={**info.provenance,
                              "threshold_source": "none yet: pick it with concealscan evaluate "
                                                  "--target-pfa on a calibration set"})
    set_metadata(out, new)
    print(f"second look fitted on {len(y)} boxes ({int(y.sum())} on packets) from "
          f"{sum(s['scans'] for s in sets)} scans; wrote {out} ({info.name} {args.version})")
    print(f"its alarm threshold is a placeholder (0.5); pick it before use:\n"
          f"  concealscan evaluate --model {out} --data CALIB/annotations.json "
          f"--target-pfa 0.05")
    return 0
