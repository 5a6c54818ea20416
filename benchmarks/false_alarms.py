"""What a model alarms on in scans without a packet: its strongest false detections, tiled.

    .venv/bin/python benchmarks/false_alarms.py --model detector/models/color.onnx \\
        --data data/sim/test --out docs/img/false_alarms_color_2.2.0.png

Runs the model on every scan of a synth set that holds no packet, takes each scan's best
detection, and tiles the ``--count`` strongest (box in red, score top left; crops resized to
the same size, so scale differs between tiles). Prints how many of them lie on a look-alike the
simulator recorded (COCO image field ``benign_packet``, overlap >= 30 % of the box) and how
many of the others on one of the scene's other recorded benign solids (``benign_object``, the
hard negatives of ``augment.hard_negatives``); the rest are other goods of the scene. Colour
and gray models read the set's colour or gray files, dual models its high/low pairs (tiled
from the colour file of the same scan).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.inference import Detector  # noqa: E402
from detector.readers import ScanRef, read_scan  # noqa: E402


def on_recorded(box, entry: dict, field: str = "benign_packet") -> bool:
    """Whether ``box`` overlaps one of the image's ``field`` boxes by >= 30 % of its area."""
    x1, y1, x2, y2 = box
    for d in entry.get(field, []):
        dx, dy, dw, dh = d["bbox"]
        ix = max(0.0, min(x2, dx + dw) - max(x1, dx))
        iy = max(0.0, min(y2, dy + dh) - max(y1, dy))
        if ix * iy > 0.3 * (x2 - x1) * (y2 - y1):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="a dual, colour or gray .onnx model")
    parser.add_argument("--data", type=Path, required=True, help="a synth folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=16, help="tiles (default: %(default)s)")
    args = parser.parse_args(argv)
    det = Detector(args.model, min_score=0.05)
    kind = det.info.input_spec.kind
    if kind not in ("dual", "color", "gray"):
        parser.error(f"--model {args.model}: a {kind!r} model; dual, colour or gray only")
    coco = json.loads((args.data / "annotations.json").read_text())
    positive = {a["image_id"] for a in coco["annotations"]}
    found = []
    for entry in coco["images"]:
        if entry["id"] in positive:
            continue
        files = entry["files"][kind]
        files = tuple(args.data / f for f in ([files] if isinstance(files, str) else files))
        path = args.data / entry["files"]["color" if kind == "dual" else kind]
        r = det.detect(read_scan(ScanRef(id=entry["scan_id"], files=files)))
        if len(r.scores):
            found.append((float(r.scores[0]), path, entry, r.boxes_xyxy[0]))
    found.sort(key=lambda t: -t[0])
    tiles, on_lookalike, on_object = [], 0, 0
    for score, path, entry, box in found[:args.count]:
        on_lookalike += on_recorded(box, entry)
        on_object += not on_recorded(box, entry) and on_recorded(box, entry, "benign_object")
        img = cv2.imread(str(path))
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 2)
        m = 40
        crop = cv2.resize(img[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m], (165, 165),
                          interpolation=cv2.INTER_AREA)
        cv2.putText(crop, f"{score:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 255), 1)
        tiles.append(crop)
    if not tiles:
        print("no detection in any negative scan")
        return 0
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 4)
    grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(json.dumps({"negative_scans": len(coco["images"]) - len(positive),
                      "with_a_detection": len(found), "tiled": min(args.count, len(found)),
                      "tiled_on_recorded_lookalike": on_lookalike,
                      "tiled_on_other_recorded_benign_object": on_object,
                      "all_on_recorded_lookalike_or_object": sum(
                          on_recorded(box, entry) or on_recorded(box, entry, "benign_object")
                          for _, _, entry, box in found),
                      "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
