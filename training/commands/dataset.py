"""``concealscan dataset import``: YOLO-txt or Pascal VOC labels to COCO JSON for training."""

from __future__ import annotations

import argparse

REQUIRES = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert YOLO-txt or Pascal VOC labels to COCO JSON")
    imp.add_argument("--format", required=True, choices=("yolo", "voc"))
    imp.add_argument("--images", required=True, help="folder of scan images")
    imp.add_argument("--labels", required=True,
                     help="folder of YOLO .txt files or VOC .xml files")
    imp.add_argument("--classes", required=True,
                     help="comma-separated class names (YOLO: in class-index order)")
    imp.add_argument("--out", required=True, metavar="ANNOTATIONS.json",
                     help="written here; file names in it are relative to its folder")
    from training.commands import dataset_reviews

    dataset_reviews.add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    if args.action == "from-reviews":
        from training.commands import dataset_reviews

        return dataset_reviews.run(args)
    import json
    import os
    import sys
    from pathlib import Path

    from detector.errors import UsageError
    from training.importers import from_voc, from_yolo, orphan_labels

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    images, labels, out = Path(args.images), Path(args.labels), Path(args.out)
    for folder in (images, labels):
        if not folder.is_dir():
            raise UsageError(f"not a folder: {folder}")
    root = out.resolve().parent
    if os.path.commonpath([root, images.resolve()]) != str(root):
        raise UsageError(f"--out must be in a folder that contains {images} (paths are stored "
                         "relative to it)")
    convert = from_yolo if args.format == "yolo" else from_voc
    try:
        coco = convert(images.resolve(), labels.resolve(), classes, root)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out.write_text(json.dumps(coco, indent=1))
    print(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} boxes, "
          f"classes {classes}")
    if args.format == "yolo":
        orphans = orphan_labels(labels.resolve(), images.resolve())
        if orphans:
            print(f"warning: {len(orphans)} label file(s) in {labels} have no image in {images} "
                  f"and were not imported: {', '.join(p.name for p in orphans[:5])}"
                  f"{' ...' if len(orphans) > 5 else ''}", file=sys.stderr)
    return 0
