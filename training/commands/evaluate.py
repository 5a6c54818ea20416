"""``concealscan evaluate``: AP, per-scan Pd/Pfa, ROC/FROC, breakdowns; picks operating points.
A CT model (kind ``ct``) is evaluated on volumes: 3-D AP at IoU 0.25 and per-volume Pd/Pfa.

MODEL may be a training checkpoint (.pt) or an exported .onnx; both run through the same
`detector.inference.infer` path the workstation uses.
"""

from __future__ import annotations

import argparse
import sys

REQUIRES = ("torch", "pycocotools", "matplotlib")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint (.pt) or exported .onnx")
    parser.add_argument("--data", required=True, nargs="+", metavar="ANNOTATIONS.json",
                        help="one or more annotated sets, judged as one (e.g. two calibration "
                             "sets, for a threshold picked on more negatives); with several, "
                             "report ids are prefixed with each set's folder name")
    parser.add_argument("--report", metavar="DIR",
                        help="write metrics.json (breakdowns, FROC points), per_scan.jsonl, "
                             "roc.png, froc.png (CT: metrics.json, per_volume.jsonl)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--target-pfa", type=_rate, metavar="PFA",
                       help="pick the alarm threshold reaching this Pfa (0..1, not 0 or 1) and "
                            "store it in MODEL; never below the 0.05 the workstation reports "
                            "boxes from")
    group.add_argument("--target-pd", type=_rate, metavar="PD",
                       help="pick the alarm threshold reaching this Pd (0..1, not 0 or 1) and "
                            "store it in MODEL; never below 0.05, as --target-pfa")
    parser.add_argument("--allow-zero-pd", action="store_true",
                        help="store the threshold even where no scan with objects of the set "
                             "alarms there (Pd 0: a model that never alarms); refused without")
    parser.add_argument("--category-map", default="", metavar="A=B,...",
                        help="rename data-set classes to model classes")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch / onnxruntime threads (default 2)")


def _rate(text: str) -> float:
    """A target Pfa or Pd: strictly between 0 and 1 (0 and 1 are never-alarm and always-alarm
    thresholds, not operating points)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1 (not 0 or 1), got "
                                         f"{text!r}")
    return value


def _load(path: str, threads: int):
    """(predict, spec, stride, classes, threshold or None where none was picked, kind of
    file, second look or None)."""
    if path.endswith(".onnx"):
        from detector.model import OnnxModel

        m = OnnxModel(path, threads=threads)
        i = m.info
        # export writes the default where the checkpoint had none, and says so in provenance
        thr = None if i.provenance.get("threshold_source") == "default" else i.alarm_threshold
        return (m.predict, i.input_spec, i.stride, list(i.classes), thr, "onnx", i.second_look)
    import torch

    from training import checkpoint
    from training.engine import torch_predict

    torch.set_num_threads(threads)
    ckpt = checkpoint.load(path)
    net, spec = checkpoint.build_model(ckpt)
    return (torch_predict(net, torch.device("cpu")), spec, net.cfg.stride, ckpt["classes"],
            ckpt.get("alarm_threshold"), "pt", None)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from detector.errors import UsageError
    from training.data import CocoScans
    from training.engine import evaluate
    from training.export import DEFAULT_THRESHOLD
    from training.report import false_alarm_line, summarise, summary_line, write_report

    cmap = _category_map(args.category_map)
    predict, spec, stride, classes, threshold, fmt, second_look = _load(args.model, args.threads)
    default = threshold is None and args.target_pfa is None and args.target_pd is None
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    if spec.kind == "ct":
        return _run_ct(args, predict, spec, stride, classes, threshold, fmt, second_look,
                       default)
    records, left_out = [], []
    for path, prefix in _sets(args.data):
        try:
            data = CocoScans(path, spec.kind, classes, cmap, as_negatives=True)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        _say_absent(data)
        if line := data.say_left_out():
            left_out.append(line)
        records += _prefixed(evaluate(predict, data, spec, stride, second_look=second_look),
                             prefix)
    threshold = _operating_point(args, records, threshold, fmt)
    summary = summarise(records, classes, threshold)
    if default:
        summary["threshold_source"] = DEFAULT_NOTE
    if left_out:  # the set judged is not the whole file: say so where the numbers are kept
        summary["left_out"] = left_out
    if args.report:
        write_report(Path(args.report), records, summary)
    print(summary_line(summary))
    if line := false_alarm_line(summary):
        print(line)
    return 0


#: The summary's word on a model that carries no threshold of its own (metrics.json:
#: ``threshold_source``): its numbers are at an arbitrary 0.5, not at an operating point.
DEFAULT_NOTE = "default: none stored; pick one with --target-pfa"


def _say_absent(data) -> None:
    """A set that names none of some model class is judged as holding none of it (false
    alarms only): say so, since a misspelt class would look the same (--category-map)."""
    if data.absent_classes:
        print(f"note: {data.path} names no {data.absent_classes} (its scans count as without "
              f"them: false alarms only); if it calls them otherwise, --category-map "
              f"SET_NAME=CLASS", file=sys.stderr)


def _run_ct(args: argparse.Namespace, predict, spec, stride: int, classes: list[str],
            threshold: float, fmt: str, second_look=None, default: bool = False) -> int:
    """CT volumes: 3-D AP at IoU 0.25 and per-volume Pd/Pfa (`training.ct_eval`)."""
    from pathlib import Path

    from detector.errors import UsageError
    from training.ct_data import CtVolumes, energies_read
    from training.ct_eval import evaluate_volumes, summarise_ct, summary_line_ct, write_report_ct
    from training.report import false_alarm_line

    records = []
    for path, prefix in _sets(args.data):
        try:
            data = CtVolumes(path, classes, energies_read(spec, second_look),
                             _category_map(args.category_map), as_negatives=True)
        except ValueError as exc:  # names the file, as CocoScans' errors do
            raise UsageError(str(exc)) from exc
        _say_absent(data)
        records += _prefixed(evaluate_volumes(predict, data, spec, stride,
                                              second_look=second_look), prefix)
    threshold = _operating_point(args, records, threshold, fmt)
    summary = summarise_ct(records, threshold)
    if default:
        summary["threshold_source"] = DEFAULT_NOTE
    if args.report:
        write_report_ct(Path(args.report), records, summary)
    print(summary_line_ct(summary))
    if line := false_alarm_line(summary):
        print(line)
    return 0


def _category_map(text: str) -> dict[str, str]:
    """--category-map ``A=B,...`` as {data-set name: model class}."""
    from detector.errors import UsageError

    pairs = [kv.split("=", 1) for kv in text.split(",") if kv.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise UsageError(f"--category-map: expected SET_NAME=CLASS,..., got {text!r}")
    return {a.strip(): b.strip() for a, b in pairs}


def _sets(paths: list[str]) -> list[tuple[str, str]]:
    """(annotation file, id prefix): none for one set; else each file's folder name (its
    path when two folders share a name), so ids from different sets stay apart."""
    from pathlib import Path

    from detector.errors import UsageError

    if len(set(paths)) != len(paths):
        raise UsageError(f"--data names a set twice: {paths}")
    if len(paths) == 1:
        return [(paths[0], "")]
    names = [Path(p).parent.name for p in paths]
    if len(set(names)) != len(names):
        names = [str(Path(p).parent) for p in paths]
    return [(p, f"{n}/") for p, n in zip(paths, names, strict=True)]


def _prefixed(records: list, prefix: str) -> list:
    if prefix:
        for r in records:
            r.scan_id = prefix + r.scan_id
    return records


def _operating_point(args: argparse.Namespace, records, threshold: float, fmt: str) -> float:
    """The model's threshold, or the one reaching --target-pfa/--target-pd (then stored)."""
    from detector.errors import UsageError
    from training.metrics import REPORT_FLOOR, alarm_threshold_for

    if args.target_pfa is None and args.target_pd is None:
        return threshold
    try:
        point = alarm_threshold_for(records, args.target_pfa, args.target_pd)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    how = (f"target_pfa={args.target_pfa}" if args.target_pfa is not None
           else f"target_pd={args.target_pd}") + f" on {' + '.join(args.data)}"
    if point.wanted < point.threshold:
        how += f"; raised to the workstation's reporting floor {REPORT_FLOOR:g}"
    if point.never_alarms and not args.allow_zero_pd:
        raise UsageError(f"alarm threshold {point.threshold:.4f} ({how}) not stored in "
                         f"{args.model}: {point.note}. Check the model and the set (more scans "
                         f"without objects allow a lower threshold), or store it anyway with "
                         f"--allow-zero-pd")
    _store_threshold(args.model, fmt, point.threshold, how)
    print(f"alarm threshold {point.threshold:.4f} ({how}) stored in {args.model}: Pd "
          f"{point.pd:.3f}, Pfa {point.pfa:.3f} there on this set")
    if point.note:
        print(f"warning: {point.note}", file=sys.stderr)
    return point.threshold


def _store_threshold(path: str, fmt: str, threshold: float, how: str) -> None:
    if fmt == "pt":
        from training.checkpoint import set_alarm_threshold

        set_alarm_threshold(path, threshold, how)
        return
    import onnx

    from detector.model import ModelInfo, info_from_metadata
    from training.export import set_metadata

    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    info = info_from_metadata(meta, path)
    set_metadata(path, ModelInfo(**{**info.__dict__, "alarm_threshold": threshold,
                                    "provenance": {**info.provenance, "threshold_source": how}}))
