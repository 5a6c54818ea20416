"""``concealscan info``: everything an exported model says about itself, after verifying it."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="an exported .onnx model (default: list the bundled models)")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON")


def run(args: argparse.Namespace) -> int:
    from detector.model import OnnxModel, manifest_path
    from detector.results import bundled_models

    paths = [args.model] if args.model else list(bundled_models().values())
    for path in paths:
        model = OnnxModel(path)
        meta = model.info.to_dict()
        if not args.json:
            meta.pop("second_look", None)  # its trees: thousands of numbers
        meta.update(file=str(path), sha256=model.sha256, manifest=str(manifest_path(path)))
        if args.json:
            print(json.dumps(meta, indent=2))
            continue
        spec = meta["input"]
        print(f"{path}\n  name/version   {meta['name']} {meta['version']} ({meta['precision']})")
        print(f"  classes        {', '.join(meta['classes'])}")
        palette = f" palette={spec['palette']}" if spec.get("palette") else ""
        scales = (f"voxel_mm={spec['voxel_mm']} hu_window={spec['hu_window']}"
                  if spec["kind"] == "ct"
                  else f"att_scale={spec['att_scale']} scale={spec['scale']}")
        print(f"  input          kind={spec['kind']} channels={spec['channels']} "
              f"{scales}{palette}")
        print(f"  stride         {meta['stride']}")
        print(f"  alarm thresh   {meta['alarm_threshold']:.4f} "
              f"({meta['provenance'].get('threshold_source', '?')})")
        print(f"  sha256         {meta['sha256']} (verified against {meta['manifest']})")
        if (look := model.info.second_look) is not None:
            fitted = look.provenance.get("fitted_on", [])
            cnn = look.provenance.get("cnn", {})
            unit = "volumes" if look.kind == "ct" else "scans"
            carried = (f"; carried over {look.provenance['carried_over']}"
                       if "carried_over" in look.provenance else "")
            print(f"  second look    {len(look.ensemble.roots)} trees over the CNN's boxes "
                  f"scoring >= {look.min_cnn_score:g}, fitted on "
                  + ", ".join(f"{f.get('data')} ({f.get('scans')} {unit})" for f in fitted)
                  + f"; CNN {cnn.get('name', '?')} {cnn.get('version', '?')}{carried}")
        for key, value in meta["provenance"].items():
            print(f"  {key:<14} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0
