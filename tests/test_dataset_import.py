"""``concealscan dataset import`` on the label sets real tools write: suffixes in capitals,
subfolders, byte-order marks, other encodings, VOC files that disagree with their images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.cli import EXIT_USAGE, main

GOOD = "0 0.5 0.5 0.2 0.5\n"  # x 20..30, y 10..30 on a 50 x 40 image
VOC_BOX = "<xmin>21</xmin><ymin>11</ymin><xmax>30</xmax><ymax>30</ymax>"


def _image(folder: Path, rel: str) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path.with_suffix(".png")), np.full((40, 50), 200, np.uint8))
    if path.suffix != ".png":
        path.with_suffix(".png").rename(path)


def _file(folder: Path, rel: str, content: str | bytes) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _voc(filename: str | None, *objects: str, extra: str = "") -> str:
    name = "" if filename is None else f"<filename>{filename}</filename>"
    return f"<annotation>{name}{extra}{''.join(objects)}</annotation>"


def _obj(box: str = VOC_BOX, name: str = "drug", difficult: str = "0") -> str:
    return (f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{box}"
            f"</bndbox></object>")


def _import(tmp_path: Path, fmt: str, capsys, classes: str = "drug", out: Path | None = None):
    """(exit status, COCO written or None, stderr)."""
    out = out or tmp_path / "coco.json"
    if out.is_file():
        out.unlink()
    code = main(["dataset", "import", "--format", fmt, "--images", str(tmp_path / "images"),
                 "--labels", str(tmp_path / "labels"), "--classes", classes, "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    coco = json.loads(out.read_text()) if code == 0 else None
    return code, coco, err


def _boxes(coco: dict) -> dict[str, list]:
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    out = {n: [] for n in names.values()}
    for a in coco["annotations"]:
        out[names[a["image_id"]]].append(a["bbox"])
    return out


def test_yolo_suffixes_match_in_any_case(tmp_path, capsys):
    _image(tmp_path / "images", "IMG0.PNG")
    _image(tmp_path / "images", "img1.PNG")
    _file(tmp_path / "labels", "IMG0.TXT", GOOD)
    _file(tmp_path / "labels", "img1.txt", GOOD)
    code, coco, _ = _import(tmp_path, "yolo", capsys)
    assert code == 0 and _boxes(coco) == {"images/IMG0.PNG": [[20, 10, 10, 20]],
                                          "images/img1.PNG": [[20, 10, 10, 20]]}


def test_voc_suffixes_match_in_any_case(tmp_path, capsys):
    _image(tmp_path / "images", "IMG0.PNG")
    _file(tmp_path / "labels", "IMG0.XML", _voc("IMG0.PNG", _obj()))
    code, coco, _ = _import(tmp_path, "voc", capsys)
    assert code == 0 and _boxes(coco) == {"images/IMG0.PNG": [[20, 10, 10, 20]]}


def test_subfolders_are_searched_and_keep_their_paths(tmp_path, capsys):
    for sub in ("train", "val"):
        _image(tmp_path / "images", f"{sub}/a.png")  # the same name in both: still two scans
        _file(tmp_path / "labels", f"{sub}/a.txt", GOOD if sub == "train" else "")
    _image(tmp_path / "images", ".hidden/b.png")  # not looked at
    code, coco, _ = _import(tmp_path, "yolo", capsys)
    assert code == 0 and _boxes(coco) == {"images/train/a.png": [[20, 10, 10, 20]],
                                          "images/val/a.png": []}
    # VOC: an XML in a subfolder, its <filename> relative to --images or to its mirror there
    _file(tmp_path / "labels", "train/a.xml", _voc("a.png", _obj()))
    _file(tmp_path / "labels", "x/val.xml", _voc("val/a.png", _obj()))
    code, coco, _ = _import(tmp_path, "voc", capsys)
    assert code == 0 and _boxes(coco) == {"images/train/a.png": [[20, 10, 10, 20]],
                                          "images/val/a.png": [[20, 10, 10, 20]]}


@pytest.mark.parametrize("fmt, reason", [("yolo", "no images"), ("voc", "no .xml files")])
def test_nothing_to_import_is_an_error(tmp_path, capsys, fmt, reason):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    if fmt == "voc":
        _image(tmp_path / "images", "sub/a.png")
    code, _, err = _import(tmp_path, fmt, capsys)
    assert code == EXIT_USAGE and reason in err and not (tmp_path / "coco.json").exists()


def test_labels_that_match_no_image_are_an_error(tmp_path, capsys):
    _image(tmp_path / "images", "batch1/a.png")
    _file(tmp_path / "labels", "a.txt", GOOD)  # not labels/batch1/a.txt
    _file(tmp_path / "labels", "classes.txt", "drug\n")  # labelImg's class list
    code, _, err = _import(tmp_path, "yolo", capsys)
    assert code == EXIT_USAGE and "none of the 1 label files" in err
    _file(tmp_path / "labels", "x.xml", _voc("gone.png", _obj()))
    code, _, err = _import(tmp_path, "voc", capsys)
    assert code == EXIT_USAGE and "none of the 1 XML files" in err


def test_voc_is_consistent_with_yolo_and_the_docs(tmp_path, capsys):
    """An image without an XML has no object; an XML whose image is missing is listed as not
    imported; a box past the edge is cut to the image; names are stripped; difficult objects
    are kept and marked."""
    for name in ("a.png", "b.png", "c.png"):
        _image(tmp_path / "images", name)
    _file(tmp_path / "labels", "a.xml", _voc("a.png", _obj(
        "<xmin>-5</xmin><ymin>11</ymin><xmax>90</xmax><ymax>60</ymax>", name="\n  drug \n")))
    _file(tmp_path / "labels", "b.xml", _voc("b.png", _obj(difficult="1")))
    _file(tmp_path / "labels", "gone.xml", _voc("gone.png", _obj()))
    code, coco, err = _import(tmp_path, "voc", capsys)
    assert code == 0 and _boxes(coco) == {"images/a.png": [[0, 10, 50, 30]],
                                          "images/b.png": [[20, 10, 10, 20]],
                                          "images/c.png": []}
    assert [a.get("difficult") for a in coco["annotations"]] == [None, 1]
    assert "1 label file(s)" in err and "gone.xml" in err and "not there" in err


@pytest.mark.parametrize("xml, reason", [
    (_voc("a.png", _obj("<xmin>60</xmin><ymin>11</ymin><xmax>90</xmax><ymax>30</ymax>")),
     "lies entirely outside the 50x40 image"),
    (_voc("../outside/a.png", _obj()), "leads outside --images"),
    (_voc("/etc/passwd", _obj()), "is an absolute path"),
    (_voc("C:\\scans\\a.png", _obj()), "is an absolute path"),
    (_voc("a.png", _obj(), extra="<size><width>100</width><height>80</height></size>"),
     "<size> says 100x80 but its image is 50x40"),
    (_voc("a.png", _obj(), extra="<size><width>40</width><height>50</height></size>"),
     "turned by 90 degrees"),
    (_voc("a.png", _obj(), extra="<size><width>wide</width><height>80</height></size>"),
     "<size> width/height are not numbers"),
])
def test_voc_refuses_boxes_outside_and_files_outside_images(tmp_path, capsys, xml, reason):
    _image(tmp_path / "images", "a.png")
    _image(tmp_path / "outside", "a.png")
    _file(tmp_path / "labels", "a.xml", xml)
    code, _, err = _import(tmp_path, "voc", capsys)
    assert code == EXIT_USAGE and f"{tmp_path / 'labels' / 'a.xml'}: " in err and reason in err


def test_voc_without_filename_finds_its_image_by_name(tmp_path, capsys):
    _image(tmp_path / "images", "a.jpg")
    _file(tmp_path / "labels", "a.xml", _voc(None, _obj()))
    code, coco, _ = _import(tmp_path, "voc", capsys)
    assert code == 0 and _boxes(coco) == {"images/a.jpg": [[20, 10, 10, 20]]}
    _file(tmp_path / "labels", "b.xml", _voc("a.jpg", _obj()))
    code, _, err = _import(tmp_path, "voc", capsys)
    assert code == EXIT_USAGE and "which" in err and "a.xml labels too" in err


@pytest.mark.parametrize("content, result", [
    ("\ufeff" + GOOD, [[20, 10, 10, 20]]),  # a byte-order mark (Notepad, Excel)
    (GOOD.replace("\n", "\r\n"), [[20, 10, 10, 20]]),
    (b"0 0.5 0.5 0.2 0.5 # caf\xe9\n", "not UTF-8 text"),
    ("0 1.5 0.5 0.2 0.5\n", "coordinates are not normalised (0..1)"),
    ("0 25 20 10 20\n", "coordinates are not normalised (0..1)"),
    ("0 0.5 0.5 -0.2 0.5\n", "expected cx, cy, w, h in 0..1"),
    # exporters' rounding: a hair outside 0..1 is the image's edge
    ("0 0.5 0.5 1.0000001 0.5\n0 0.9 -0.0001 0.2 0.3\n", [[0, 10, 50, 20], [40, 0, 10, 6]]),
])
def test_yolo_label_text(tmp_path, capsys, content, result):
    _image(tmp_path / "images", "a.png")
    _file(tmp_path / "labels", "a.txt", content)
    code, coco, err = _import(tmp_path, "yolo", capsys)
    if isinstance(result, list):
        assert code == 0 and _boxes(coco) == {"images/a.png": result}
    else:
        assert code == EXIT_USAGE and f"{tmp_path / 'labels' / 'a.txt'}" in err
        assert result in err


@pytest.mark.parametrize("classes, reason", [
    ("", "--classes: expected comma-separated class names"),
    ("a,,b", "--classes: expected comma-separated class names"),
    ("a,a", "--classes: ['a'] named more than once"),
])
def test_bad_classes_and_out_are_usage_errors(tmp_path, capsys, classes, reason):
    _image(tmp_path / "images", "a.png")
    _file(tmp_path / "labels", "a.txt", GOOD)
    code, _, err = _import(tmp_path, "yolo", capsys, classes=classes)
    assert code == EXIT_USAGE and reason in err
    code, _, err = _import(tmp_path, "yolo", capsys, out=tmp_path)
    assert code == EXIT_USAGE and "is a folder" in err


def test_a_voc_filename_that_misses_its_image_beside_the_xmls_namesake_is_an_error(
        tmp_path, capsys):
    """<filename> b.jpg where b.png is on disk: importing b.png without its boxes would train
    its objects as background, so it is an error naming the XML, not a warning."""
    _image(tmp_path / "images", "b.png")
    _file(tmp_path / "labels", "b.xml", _voc("b.jpg", _obj()))
    code, _, err = _import(tmp_path, "voc", capsys)
    assert code == EXIT_USAGE and "b.xml" in err and "correct <filename>" in err


@pytest.mark.parametrize("size", ["<width>50</width><height>40</height><depth>1</depth>",
                                  "<width>0</width><height>0</height>", ""])
def test_a_voc_size_that_matches_or_is_unknown_imports(tmp_path, capsys, size):
    _image(tmp_path / "images", "a.png")
    _file(tmp_path / "labels", "a.xml", _voc("a.png", _obj(), extra=f"<size>{size}</size>"))
    code, coco, _ = _import(tmp_path, "voc", capsys)
    assert code == 0 and _boxes(coco) == {"images/a.png": [[20.0, 10.0, 10.0, 20.0]]}
