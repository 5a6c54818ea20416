"""``concealscan synth`` end to end: files, COCO, what read_scan makes of them, determinism."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from detector import read_scan
from detector.cli import main
from detector.scan import transmission_to_attenuation
from training.sim.config import load_config
from training.sim.generate import generate
from training.sim.sensor import FULL_SCALE

CONFIG = "configs/synth/small.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--count", "4", "--seed", "21",
                 "--config", CONFIG]) == 0
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_writes_every_file_per_scan(dataset):
    names = set(p.name for p in dataset.iterdir())
    assert {"annotations.json", "manifest.json"} <= names
    for i in range(4):
        for part in ("high.png", "low.png", "color.png", "gray.png", "scene.json"):
            assert f"synth_{i:06d}_{part}" in names


def test_annotations_are_coco_with_our_fields(dataset):
    doc = json.loads((dataset / "annotations.json").read_text())
    assert doc["categories"] == [{"id": 1, "name": "concealed_organic"}]
    assert [im["id"] for im in doc["images"]] == [1, 2, 3, 4]
    for im in doc["images"]:
        name = im["scan_id"]
        assert im["file_name"] == f"{name}_high.png"
        assert im["files"] == {"dual": [f"{name}_high.png", f"{name}_low.png"],
                               "gray": f"{name}_gray.png", "color": f"{name}_color.png"}
        assert {"width", "height", "positive", "host_kinds", "pixel_mm", "benign_packet"} <= set(im)
        assert im["positive"] == any(a["image_id"] == im["id"] for a in doc["annotations"])
    for ann in doc["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        x, y, w, h = ann["bbox"]
        im = doc["images"][ann["image_id"] - 1]
        assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"]
        assert {"host", "material", "mass_g", "difficulty", "strategy", "area"} <= set(ann)


def test_benign_objects_are_block_like_solids_clear_of_every_packet(dataset):
    """``benign_object``: boxes of the scene's other benign solids (hard negatives for
    training), taken from the scene record; none touches a packet's box."""
    from training.sim.labels import BENIGN_DENSITY, benign_objects
    from training.sim.scene import Scene

    doc = json.loads((dataset / "annotations.json").read_text())
    total = 0
    for im in doc["images"]:
        packets = [a["bbox"] for a in doc["annotations"] if a["image_id"] == im["id"]]
        record = json.loads((dataset / f"{im['scan_id']}_scene.json").read_text())
        assert im["benign_object"] == benign_objects(Scene.from_json(record["scene"]), packets)
        for obj in im["benign_object"]:
            x, y, w, h = obj["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= im["width"] and y + h <= im["height"]
            assert BENIGN_DENSITY[0] <= obj["density"] <= BENIGN_DENSITY[1]
            for px, py, pw, ph in packets:
                assert x + w <= px - 2 or px + pw + 2 <= x or y + h <= py - 2 or py + ph + 2 <= y
        total += len(im["benign_object"])
    assert total > 0


def test_add_benign_objects_fills_the_field_into_an_older_data_set(dataset, tmp_path, capsys):
    import shutil

    from detector.cli import EXIT_USAGE

    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    doc = json.loads((old / "annotations.json").read_text())
    for im in doc["images"]:
        del im["benign_object"]
    (old / "annotations.json").write_text(json.dumps(doc))
    assert main(["synth", "--out", str(old), "--add-benign-objects"]) == 0
    assert "benign objects" in capsys.readouterr().out
    assert json.loads((old / "annotations.json").read_text()) == \
        json.loads((dataset / "annotations.json").read_text())
    (old / "synth_000001_scene.json").unlink()
    assert main(["synth", "--out", str(old), "--add-benign-objects"]) == EXIT_USAGE
    assert "synth_000001_scene.json: no usable scene record" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "empty"), "--add-benign-objects"]) == EXIT_USAGE
    assert "holds no annotations.json" in capsys.readouterr().err


def test_read_scan_sees_dual_gray_and_colour(dataset):
    config = load_config(CONFIG)
    result = generate(config, 21, 0, "synth_000000")
    dual = read_scan(dataset / "synth_000000_high.png")
    assert dual.kind == "dual" and dual.bit_depth == 16
    assert dual.size_hw == result.size_hw
    expected = transmission_to_attenuation(result.counts, 16)
    np.testing.assert_array_equal(dual.image, expected)
    # ... which is the rendered transmission up to 16-bit rounding (half a count of c counts
    # moves attenuation by at most -ln(1 - 0.5 / c)) where it was not clipped.
    counts = result.measured.astype(np.float64) * FULL_SCALE
    inside = (counts >= 1) & (counts <= FULL_SCALE)
    error = np.abs(dual.image[inside] + np.log(result.measured[inside].astype(np.float64)))
    assert np.all(error <= -np.log(1 - 0.5 / counts[inside]) + 1e-5)
    assert inside.mean() > 0.3
    assert read_scan(dataset / "synth_000000_gray.png").kind == "gray"
    colour = read_scan(dataset / "synth_000000_color.png")
    assert colour.kind == "color"
    np.testing.assert_array_equal(colour.image.transpose(1, 2, 0), result.color)


def test_air_is_full_scale(dataset):
    high = read_scan(dataset / "synth_000001_high.png")
    corner = high.image[0, :4, :4]
    assert np.median(corner) < 0.05  # air: attenuation near zero, counts near 65535


def test_same_seed_same_bytes_any_workers(dataset, tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--count", "4", "--seed", "21",
                 "--config", CONFIG, "--workers", "2"]) == 0
    assert _files(tmp_path) == _files(dataset)


def test_other_seed_other_scans(dataset, tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--count", "1", "--seed", "22",
                 "--config", CONFIG]) == 0
    assert (tmp_path / "synth_000000_high.png").read_bytes() != \
        (dataset / "synth_000000_high.png").read_bytes()


def test_replay_rewrites_the_scan_exactly(dataset, tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--replay",
                 str(dataset / "synth_000002_scene.json")]) == 0
    for part in ("high.png", "low.png", "color.png", "gray.png"):
        name = f"synth_000002_{part}"
        assert (tmp_path / name).read_bytes() == (dataset / name).read_bytes(), name


@pytest.mark.parametrize("argv,message", [
    (["--count", "0"], "--count: expected >= 1"),
    (["--count", "2", "--workers", "0"], "--workers: expected >= 1"),
    ([], "--count is required"),
    (["--count", "1", "--resume", "--overwrite"], "--resume: not with --overwrite"),
    (["--count", "1", "--config", "configs/synth/nope.yaml"], "not found"),
    (["--count", "1", "--prefix", "a/b"], "--prefix: a file name prefix, without '/'"),
    (["--count", "1", "--prefix", "a\\b"], "--prefix: a file name prefix, without '/'"),
    (["--replay", "x_scene.json", "--count", "5"], "--replay: not with --count"),
    (["--replay", "x_scene.json", "--seed", "0", "--kinds", "ct"],
     "--replay: not with --seed, --kinds (the scene record says what to render)")])
def test_usage_errors_exit_64(tmp_path, capsys, argv, message):
    assert main(["synth", "--out", str(tmp_path), *argv]) == 64
    assert message in capsys.readouterr().err


def test_refuses_to_overwrite_a_data_set(dataset, capsys):
    assert main(["synth", "--out", str(dataset), "--count", "1"]) == 64
    assert "--overwrite" in capsys.readouterr().err


class _Cut(Exception):
    """Stands for the run being killed after a number of scans."""


def _interrupt_after(monkeypatch, module, scans: int, made: list[int]) -> None:
    """Make ``module._make`` record each scan index it makes and stop the run after ``scans``."""
    real = module._make

    def make(job, index):
        if len(made) == scans:
            raise _Cut
        made.append(index)
        return real(job, index)

    monkeypatch.setattr(module, "_make", make)


def test_resume_continues_an_interrupted_run_to_the_same_bytes(dataset, tmp_path, monkeypatch,
                                                               capsys):
    import training.sim.writer as writer
    from training.sim.journal import JOURNAL

    argv = ["synth", "--out", str(tmp_path), "--count", "4", "--seed", "21", "--config", CONFIG]
    made: list[int] = []
    _interrupt_after(monkeypatch, writer, 2, made)
    with pytest.raises(_Cut):
        main(argv)
    assert not (tmp_path / "annotations.json").exists() and (tmp_path / JOURNAL).exists()
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('[{"file_name": "cut off mid-wr')  # the kill came during a write
    assert main(argv) == 64
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    made.clear()
    _interrupt_after(monkeypatch, writer, 99, made)
    assert main([*argv, "--resume"]) == 0
    assert made == [2, 3]
    assert "2 of 4 scans were made by an earlier run" in capsys.readouterr().err
    assert _files(tmp_path) == _files(dataset)


@pytest.mark.parametrize("change, message", [
    ({"--seed": "22"}, "seed: 21"),
    ({"--prefix": "other_"}, "prefix: 'synth_'"),
    ({"--config": "configs/synth/default.yaml"}, "config_sha256")])
def test_resume_refuses_a_journal_of_another_run(tmp_path, monkeypatch, capsys, change, message):
    import training.sim.writer as writer

    options = {"--out": str(tmp_path), "--count": "3", "--seed": "21", "--config": CONFIG}
    _interrupt_after(monkeypatch, writer, 1, [])
    with pytest.raises(_Cut):
        main(["synth", *(x for item in options.items() for x in item)])
    argv = [x for item in {**options, **change}.items() for x in item]
    assert main(["synth", *argv, "--resume"]) == 64
    assert message in capsys.readouterr().err


def _disk_full_writing(monkeypatch, name_part: str) -> None:
    """Any file whose name holds ``name_part`` gets half of its first write, then ENOSPC: a
    disk that fills (or a run killed) while that file is written."""
    import builtins
    import errno
    import io

    real_open = io.open

    class Full:
        def __init__(self, fh) -> None:
            self._fh = fh

        def write(self, data):
            self._fh.write(data[: len(data) // 2])
            self._fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device", self._fh.name)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self._fh.close()

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        writing = isinstance(file, (str, Path)) and any(c in mode for c in "wax")
        return Full(fh) if writing and name_part in Path(file).name else fh

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)


@pytest.mark.parametrize("failing", ["annotations.json", "manifest.json"])
def test_a_run_stopped_while_finishing_is_completed_by_resume(dataset, tmp_path, monkeypatch,
                                                              capsys, failing):
    """The documents are written whole (temporary file, rename), the manifest after the
    annotations and the journal removed last: whichever write fails, the folder is an
    interrupted run that --resume finishes, not a broken set that only --overwrite replaces."""
    from training.sim.journal import JOURNAL

    argv = ["synth", "--out", str(tmp_path), "--count", "4", "--seed", "21", "--config", CONFIG]
    _disk_full_writing(monkeypatch, failing)
    assert main(argv) == 74
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert f"cannot write in {tmp_path}: No space left on device" in err and "--resume" in err
    assert not (tmp_path / "manifest.json").exists() and (tmp_path / JOURNAL).exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries
    assert main(argv) == 64  # not a finished set, and not silently made again
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert _files(tmp_path) == _files(dataset)


@contextlib.contextmanager
def _tmpfs(path: Path, size_kb: int, readonly: bool = False):
    """A small tmpfs at ``path`` (a real full disk or read-only folder); skips where mounting
    is not allowed (the in-process fault tests above still run)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_stops_with_exit_74_and_resume_finishes_the_set(dataset, tmp_path, capsys):
    """About 1.1 MB of scans on a 1 MB disk: a one-line error naming the folder (no
    traceback), and once there is room --resume gives the uninterrupted run's bytes."""
    with _tmpfs(tmp_path / "fs", 1024) as fs:
        filler = fs / "filler"
        filler.write_bytes(b"\0" * 600_000)
        out = fs / "set"
        argv = ["synth", "--out", str(out), "--count", "4", "--seed", "21", "--config", CONFIG]
        assert main(argv) == 74
        err = capsys.readouterr().err
        assert f"cannot write in {out}: No space left on device" in err
        assert "with --resume continues" in err and "Traceback" not in err
        filler.unlink()
        assert main([*argv, "--resume"]) == 0
        assert _files(out) == _files(dataset)


@pytest.mark.parametrize("kinds", ["xray", "ct"])
def test_a_read_only_folder_is_exit_74_naming_it(tmp_path, capsys, kinds):
    with _tmpfs(tmp_path / "ro", 64, readonly=True) as ro:
        assert main(["synth", "--out", str(ro / "set"), "--count", "1", "--kinds", kinds]) == 74
        assert f"cannot write in {ro / 'set'}: Read-only file system" in capsys.readouterr().err


def test_overwrite_replaces_the_set_and_leaves_other_files(dataset, tmp_path, capsys):
    """--overwrite deletes the files the old set's documents list (4 scans here, 1 after),
    never a file they do not list (notes.txt) nor one outside the folder that a doctored
    annotations.json names; it says which other files it left."""
    import shutil

    out = tmp_path / "set"
    shutil.copytree(dataset, out)
    (out / "notes.txt").write_text("mine\n")
    (tmp_path / "outside.txt").write_text("mine too\n")
    doc = json.loads((out / "annotations.json").read_text())
    doc["images"][0]["files"]["gray"] = "../outside.txt"
    (out / "annotations.json").write_text(json.dumps(doc))
    assert main(["synth", "--out", str(out), "--count", "1", "--seed", "22", "--config", CONFIG,
                 "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "removed the 22 files of the data set" in err  # 4 x 5 files, 2 documents
    assert "1 file(s) that are not from a data set made here (notes.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["annotations.json", "manifest.json", "notes.txt",
         *(f"synth_000000_{part}" for part in ("high.png", "low.png", "color.png", "gray.png",
                                               "scene.json"))])
    assert (tmp_path / "outside.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["seed"] == 22


def test_ctrl_c_says_that_resume_continues(tmp_path, monkeypatch, capsys):
    import training.sim.writer as writer

    def make(job, index):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_make", make)
    assert main(["synth", "--out", str(tmp_path), "--count", "2", "--config", CONFIG]) == 130
    assert "interrupted; the scans finished so far are kept: the same command with --resume " \
           "continues" in capsys.readouterr().err
