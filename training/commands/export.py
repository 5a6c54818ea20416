"""``concealscan export``: a checkpoint becomes a self-describing ONNX model plus manifest."""

from __future__ import annotations

import argparse

REQUIRES = ("torch", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt from concealscan train")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx",
                        help="ONNX file to write (with MODEL.manifest.json beside it)")
    parser.add_argument("--version", default="1.0.0",
                        help="model version written into it (default 1.0.0; letters, digits "
                             "and ._+-, as the registry takes them)")
    parser.add_argument("--name", help="model name written into it (default: the run's name, "
                                       "e.g. to export run color_hn as the bundled 'color')")
    parser.add_argument("--int8", action="store_true",
                        help="also quantize: static QDQ INT8 (needs --calibration)")
    parser.add_argument("--calibration", metavar="DIR", help="scans for INT8 calibration")


def run(args: argparse.Namespace) -> int:
    import re
    import sys
    from pathlib import Path

    import numpy as np

    from detector.errors import ScanError, UsageError
    from detector.preprocess import InputSpec
    from detector.registry import check_version
    from training import checkpoint
    from training.export import calibration_inputs, export_onnx, parity, quantize_int8
    from training.metrics import REPORT_FLOOR

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UsageError(f"--out must end in .onnx, got {out}")
    if args.int8 and not args.calibration:
        raise UsageError("--int8 needs --calibration DIR (scans of the model's kind)")
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", args.name):
        raise UsageError(f"--name: letters, digits, '_', '.' and '-' (at most 64), got "
                         f"{args.name!r}")
    check_version(args.version)
    ckpt = checkpoint.load(args.checkpoint)  # read once, for the export and the parity check
    inputs = None
    if args.int8:  # checked before anything is written: no fp32 model left behind
        try:
            spec = InputSpec.from_dict(ckpt["input_spec"])
            inputs = calibration_inputs(args.calibration, spec)
        except (ValueError, ScanError) as exc:
            raise UsageError(f"--calibration: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    info = export_onnx(ckpt, out, version=args.version, name=args.name)
    x = np.random.default_rng(1).random((1, info.input_spec.num_channels, 192, 288),
                                        dtype=np.float32)
    d_heat, d_box = parity(ckpt, out, x)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {info.name} {info.version}, "
          f"kind {info.kind}, threshold {info.alarm_threshold:.4f}; parity vs torch on "
          f"1x{x.shape[1]}x192x288: max |d heat| {d_heat:.2e}, max |d box| {d_box:.2e} px")
    if info.alarm_threshold < REPORT_FLOOR:  # from a checkpoint picked before the floor
        print(f"warning: its alarm threshold {info.alarm_threshold:.4f} is below the "
              f"{REPORT_FLOOR:g} the workstation reports boxes from; pick it again: "
              f"concealscan evaluate --model {out} --data CALIB.json --target-pfa 0.05",
              file=sys.stderr)
    if info.alarm_threshold >= 1.0:  # e.g. picked where a false alarm outscored every packet
        print(f"warning: its alarm threshold {info.alarm_threshold:.4f} is the highest a model "
              f"can carry: it alarms only on a box scoring exactly 1.0, next to never; pick it "
              f"again: concealscan evaluate --model {out} --data CALIB.json --target-pfa 0.05",
              file=sys.stderr)
    if args.int8:
        q_out = out.with_name(out.stem + "_int8.onnx")
        quantize_int8(out, q_out, args.calibration, inputs=inputs)
        print(f"wrote {q_out} ({q_out.stat().st_size / 1e6:.2f} MB, int8 QDQ)")
    return 0
