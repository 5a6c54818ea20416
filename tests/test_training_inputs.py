"""What training and evaluation refuse before they run: data sets whose categories do not
name the model's classes, recipes with values of the wrong type or range, checkpoints that
another recipe cannot resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toy_data import write_toy_set

from training.data import CocoScans, DataSetError


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy_set(tmp_path_factory.mktemp("toy") / "set", 4, 1)


def _variant(toy: Path, name: str, **changes) -> Path:
    """A copy of the toy set's annotations beside it with some fields replaced."""
    coco = {**json.loads(toy.read_text()), **changes}
    path = toy.with_name(name)
    path.write_text(json.dumps(coco))
    return path


def test_classes_that_name_no_category_of_the_set_are_an_error(toy):
    with pytest.raises(DataSetError) as err:
        CocoScans(toy, "dual", ["a", "b"])
    text = str(err.value)
    assert str(toy) in text and "['a', 'b']" in text and "['concealed_organic']" in text
    renamed = _variant(toy, "renamed.json", categories=[{"id": 1, "name": "drugs"}])
    with pytest.raises(DataSetError, match=r"\['drugs'\].*--category-map"):
        CocoScans(renamed, "dual", ["concealed_organic"])
    data = CocoScans(renamed, "dual", ["concealed_organic"], {"drugs": "concealed_organic"})
    assert sum(len(anns) for _, _, anns in data.items) == 2
    # one class of two missing is an error too: its objects would be counted as absent
    with pytest.raises(DataSetError, match=r"\['knife'\]"):
        CocoScans(toy, "dual", ["concealed_organic", "knife"])


def test_extra_categories_and_sets_without_annotations_are_accepted(toy):
    extra = _variant(toy, "extra.json", categories=[{"id": 1, "name": "concealed_organic"},
                                                    {"id": 2, "name": "benign_bottle"}])
    assert len(CocoScans(extra, "dual", ["concealed_organic"])) == 4
    negatives = _variant(toy, "negatives.json", annotations=[], categories=[])
    data = CocoScans(negatives, "dual", ["concealed_organic"])
    assert len(data) == 4 and not any(anns for _, _, anns in data.items)
    undeclared = _variant(toy, "undeclared.json", categories=[{"id": 7, "name":
                                                               "concealed_organic"}])
    with pytest.raises(DataSetError, match="category_id 1, which its categories do not list"):
        CocoScans(undeclared, "dual", ["concealed_organic"])


def test_ct_sets_check_their_categories_too(tmp_path):
    from training.ct_data import CtVolumes

    coco = {"images": [{"id": 1, "file_name": "v.npy", "files": {"ct": "v.npy"}}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "bbox3d": [0, 0, 0, 4, 4, 4]}],
            "categories": [{"id": 1, "name": "drugs"}]}
    path = tmp_path / "ct.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(DataSetError, match=r"\['concealed_organic'\].*\['drugs'\]"):
        CtVolumes(path, ["concealed_organic"])
    data = CtVolumes(path, ["concealed_organic"], category_map={"drugs": "concealed_organic"})
    assert len(data.items[0][2]) == 1


def test_train_refuses_classes_missing_from_the_data_and_evaluate_says_so(tmp_path, toy, capsys):
    from detector.cli import EXIT_USAGE, main

    recipe = tmp_path / "two.yaml"
    recipe.write_text(
        f"name: two\nkind: dual\nclasses: [a, b]\nout_dir: {tmp_path / 'runs'}\n"
        f"data:\n  train: [{{path: {toy}}}]\n"
        "model: {widths: [8, 8, 8, 8, 8], blocks: [1, 1, 1, 1, 1], neck_width: 8}\n"
        "optim: {epochs: 1, batch_size: 2, workers: 0, threads: 1}\n")
    assert main(["train", "--config", str(recipe)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{recipe}: data: {toy}: class(es) ['a', 'b']" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    renamed = _variant(toy, "renamed2.json", categories=[{"id": 1, "name": "drugs"}])
    # evaluate judges a set that names none of the model's classes as holding none (a set
    # labelled for other things measures false alarms), and says so
    model = Path(__file__).parent.parent / "detector" / "models" / "dual.onnx"
    assert main(["evaluate", "--model", str(model), "--data", str(renamed)]) == 0
    assert "names no ['concealed_organic']" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--data", str(renamed),
                 "--category-map", "drugs"]) == EXIT_USAGE
    assert "--category-map: expected SET_NAME=CLASS" in capsys.readouterr().err


def _recipe(**changes) -> dict:
    values = {"name": "r", "kind": "gray", "classes": ["concealed_organic"],
              "data": {"train": [{"path": "train.json"}]},
              "optim": {"epochs": 2, "batch_size": 4, "lr": 0.003}}
    for key, value in changes.items():
        section, _, name = key.rpartition("__")
        (values.setdefault(section, {}) if section else values)[name] = value
    return values


@pytest.mark.parametrize("changes, message", [
    ({"optim__lr": 1e-3}, None),
    ({"optim__lr": "1e-3"}, None),  # YAML 1.1 (PyYAML) reads 1e-3 as text
    ({"optim__lr": "fast"}, "optim.lr: expected a number, got 'fast'"),
    ({"optim__lr": float("nan")}, "optim.lr: expected a finite number"),
    ({"optim__lr": -0.003}, "optim.lr: expected > 0, got -0.003"),
    ({"optim__epochs": "2"}, "optim.epochs: expected a whole number, got '2'"),
    ({"optim__epochs": 2.5}, "optim.epochs: expected a whole number"),
    ({"optim__epochs": 0}, "optim.epochs: expected >= 1, got 0"),
    ({"optim__batch_size": 0}, "optim.batch_size: expected >= 1, got 0"),
    ({"optim__keep_epochs": "yes please"}, "optim.keep_epochs: expected true or false"),
    ({"data__scale": 0}, "data.scale: expected in 0.05..4, got 0.0"),
    ({"classes": []}, "classes: expected one or more distinct names, got []"),
    ({"classes": ["a", "a"]}, "classes: expected one or more distinct names"),
    ({"classes": "concealed_organic"}, "classes: expected a list"),
    ({"target_pfa": 2}, "target_pfa: expected between 0 and 1"),
    ({"target_pfa": 0}, "target_pfa: expected between 0 and 1"),
    ({"target_pfa": None}, None),
    ({"augment__crop_size": 8}, "augment.crop_size: expected >= 32, got 8"),
    ({"augment__scale_range": [1.2, 0.8]}, "augment.scale_range: expected [low, high]"),
    ({"augment__scale_range": [1.2]}, "augment.scale_range: expected 2 values"),
    ({"loss__focal_alpha": 1.5}, "loss.focal_alpha: expected in 0..1"),
    ({"model__widths": [8, 8, 0, 8, 8]}, "model.widths: expected every width >= 1"),
    ({"optim": 3}, "optim: expected a mapping, got 3"),
    ({"optim": None}, "optim: expected a mapping, got None"),
    ({"data__train": [{"path": "a.json", "weight": 0}]}, "data.train[0].weight: expected > 0"),
    ({"kind": None}, "kind: expected text, got None"),
])
def test_recipe_values_are_checked_by_type_and_range(changes, message):
    from detector.errors import UsageError
    from training.config import parse_config

    values = _recipe(**changes)
    if message is None:
        cfg = parse_config(values, "r.yaml")
        assert isinstance(cfg.optim.lr, float) and isinstance(cfg.optim.epochs, int)
        return
    with pytest.raises(UsageError) as err:
        parse_config(values, "r.yaml")
    assert str(err.value).startswith("r.yaml: ") and message in str(err.value), str(err.value)


def test_a_missing_key_is_named():
    from detector.errors import UsageError
    from training.config import parse_config

    with pytest.raises(UsageError, match=r"r.yaml: missing key\(s\) \['kind', 'classes'\]"):
        parse_config({"name": "r"}, "r.yaml")


def _tiny_recipe(tmp_path: Path, toy: Path, kind: str = "color") -> Path:
    recipe = tmp_path / f"{kind}.yaml"
    recipe.write_text(
        f"name: r\nkind: {kind}\nclasses: [concealed_organic]\nout_dir: {tmp_path / 'runs'}\n"
        f"data:\n  train: [{{path: {toy}}}]\n"
        "model: {widths: [8, 8, 8, 8, 8], blocks: [1, 1, 1, 1, 1], neck_width: 8}\n"
        "optim: {epochs: 1, batch_size: 2, workers: 0, threads: 1}\n")
    return recipe


def _checkpoint(path: Path, kind: str, classes=("concealed_organic",), state=True,
                widths=(8, 8, 8, 8, 8)) -> Path:
    from detector.preprocess import InputSpec
    from training import checkpoint
    from training.model import ConcealNet, ModelConfig

    spec = InputSpec.for_kind(kind)
    model = ConcealNet(ModelConfig(in_channels=spec.num_channels, widths=widths,
                                   blocks=(1, 1, 1, 1, 1), neck_width=8))
    checkpoint.save(path, model=model, spec=spec, classes=list(classes), name="r",
                    provenance={"config_path": "configs/train/old.yaml"},
                    state={"epoch": 1, "optimizer": {}, "scheduler": {}} if state else None)
    return path


@pytest.mark.parametrize("kind, classes, state, widths, message", [
    ("dual", ["concealed_organic"], True, (8,) * 5,
     "kind 'dual' there, 'color' here, channels ['high', 'low', 'ratio', 'r', 'g', 'b'] there"),
    ("color", ["gun"], True, (8,) * 5, "classes ['gun'] there, ['concealed_organic'] here"),
    ("color", ["concealed_organic"], True, (8, 8, 16, 16, 16),
     "model.widths [8, 8, 16, 16, 16] there, [8, 8, 8, 8, 8] here"),
    ("color", ["concealed_organic"], False, (8,) * 5,
     "holds no training state (a best.pt, or a checkpoint rebuilt from ONNX): resume from the "
     "run's last.pt"),
])
def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, toy, capsys, kind, classes,
                                                      state, widths, message):
    from detector.cli import EXIT_USAGE, main

    ckpt = _checkpoint(tmp_path / "last.pt", kind, classes, state, widths)
    recipe = _tiny_recipe(tmp_path, toy)
    assert main(["train", "--config", str(recipe), "--resume", str(ckpt)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--resume {ckpt}: " in err and message in err and "Traceback" not in err, err
    if state:
        assert "configs/train/old.yaml" in err  # the recipe it was trained with
    assert not (tmp_path / "runs").exists()


def test_a_data_set_beside_its_images_and_one_naming_a_device(tmp_path):
    """The common layout annotations/instances.json + images/ (names '../images/x.png') reads;
    a name that is not a regular file (a device: /dev/zero would never end) is an error naming
    the set, and a missing image says where names are looked for."""
    import json

    import cv2
    import numpy as np

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "x.png"),
                np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1)))
    path = tmp_path / "annotations" / "instances.json"

    def write(name):
        path.write_text(json.dumps({"images": [{"id": 1, "file_name": name, "width": 50,
                                                "height": 40}],
                                    "annotations": [], "categories": []}))

    write("../images/x.png")
    assert len(CocoScans(path, "gray", ["concealed_organic"])) == 1
    write("/dev/zero")
    with pytest.raises(DataSetError, match="not a regular file"):
        CocoScans(path, "gray", ["concealed_organic"])
    write("x.png")
    with pytest.raises(DataSetError, match="relative to .*annotations"):
        CocoScans(path, "gray", ["concealed_organic"])


def test_a_recipe_whose_epoch_holds_no_whole_batch_is_refused(tmp_path, toy, capsys):
    """4 scans and batch_size 8: batches are whole, so no step would run; the run said "best
    checkpoint" and exited 0 having learnt nothing."""
    from detector.cli import EXIT_USAGE, main

    recipe = tmp_path / "big_batch.yaml"
    recipe.write_text(
        f"name: big\nkind: dual\nclasses: [concealed_organic]\nout_dir: {tmp_path / 'runs'}\n"
        f"data:\n  train: [{{path: {toy}}}]\n"
        "model: {widths: [8, 8, 8, 8, 8], blocks: [1, 1, 1, 1, 1], neck_width: 8}\n"
        "optim: {epochs: 1, batch_size: 8, workers: 0, threads: 1}\n")
    assert main(["train", "--config", str(recipe)]) == EXIT_USAGE
    assert "fewer than optim.batch_size 8" in capsys.readouterr().err
