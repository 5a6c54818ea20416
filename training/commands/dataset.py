"""``concealscan dataset import``: YOLO-txt or Pascal VOC labels to COCO JSON for training."""

from __future__ import annotations

import argparse

REQUIRES = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert YOLO-txt or Pascal VOC labels to COCO JSON")
    imp.add_argument("--format", required=True, choices=("yolo", "voc"))
    imp.add_argument("--images", required=True,
                     help="folder of scan images (subfolders are searched too)")
    imp.add_argument("--labels", required=True,
                     help="folder of YOLO .txt files or VOC .xml files (subfolders too; a YOLO "
                          "file mirrors its image's path: labels/train/a.txt for "
                          "images/train/a.png)")
    imp.add_argument("--classes", required=True,
                     help="comma-separated class names (YOLO: in class-index order)")
    imp.add_argument("--out", required=True, metavar="ANNOTATIONS.json",
                     help="written here; file names in it are relative to its folder")
    from training.commands import dataset_reviews

    dataset_reviews.add_arguments(sub)


def parse_classes(text: str) -> list[str]:
    """--classes ``a,b``: names, none empty, none twice."""
    from detector.errors import UsageError

    classes = [c.strip() for c in text.split(",")]
    if not text.strip() or not all(classes):
        raise UsageError(f"--classes: expected comma-separated class names, got {text!r}")
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise UsageError(f"--classes: {twice} named more than once in {text!r}")
    return classes


def run(args: argparse.Namespace) -> int:
    if args.action == "from-reviews":
        from training.commands import dataset_reviews

        return dataset_reviews.run(args)
    import json
    import os
    import sys
    from pathlib import Path

    from detector.errors import UsageError
    from training.importers import from_voc, from_yolo

    classes = parse_classes(args.classes)
    images, labels, out = Path(args.images), Path(args.labels), Path(args.out)
    for folder in (images, labels):
        if not folder.is_dir():
            raise UsageError(f"not a folder: {folder}")
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder; name the file to write, e.g. "
                         f"{out / 'annotations.json'}")
    root = out.resolve().parent
    if os.path.commonpath([root, images.resolve()]) != str(root):
        raise UsageError(f"--out must be in a folder that contains {images} (paths are stored "
                         "relative to it)")
    convert = from_yolo if args.format == "yolo" else from_voc
    try:
        result = convert(images.resolve(), labels.resolve(), classes, root)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    coco = result.coco
    out.write_text(json.dumps(coco, indent=1))
    difficult = sum(1 for a in coco["annotations"] if a.get("difficult"))
    print(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} boxes"
          f"{f' ({difficult} marked difficult)' if difficult else ''}, classes {classes}")
    if not coco["annotations"]:
        print(f"warning: no boxes: every image was imported as a scan without objects (is "
              f"--labels {labels} the right folder?)", file=sys.stderr)
    skipped = result.not_imported
    if skipped:
        print(f"warning: {len(skipped)} label file(s) in {labels} were not imported: "
              + "; ".join(f"{p.relative_to(labels.resolve())} ({why})" for p, why in skipped[:5])
              + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
    return 0
