"""A checkpoint rebuilt from an exported ONNX model: the same network in eval mode, its
BatchNorm statistics those of the recipe's training crops, and a usable start for training."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from model_fixtures import trained_batchnorm
from toy_data import write_toy_set

from detector.preprocess import InputSpec
from training import checkpoint
from training.config import recipe_config
from training.export import export_onnx
from training.model import ConcealNet, ModelConfig
from training.recover import RecoverError, recover, training_batches

TINY = {"widths": [8, 12, 16, 24, 32], "blocks": [1, 1, 1, 1, 1], "neck_width": 12}


def recipe(path, train, widths=TINY["widths"]):
    path.write_text(
        "name: rec\nkind: dual\nclasses: [concealed_organic]\n"
        f"out_dir: {path.parent / 'runs'}\ninit_from: {path.parent / 'gone.pt'}\n"
        f"data:\n  train: [{{path: {train}}}]\n  val: {{path: {path.parent / 'gone.json'}}}\n"
        "augment: {crop_size: 96}\n"
        f"model: {{widths: {list(widths)}, blocks: {TINY['blocks']}, "
        f"neck_width: {TINY['neck_width']}}}\n"
        "optim: {epochs: 1, batch_size: 8, lr: 0.001, workers: 0, warmup_steps: 2, "
        "threads: 1}\n")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny dual model whose BatchNorms hold non-trivial statistics, exported to ONNX."""
    root = tmp_path_factory.mktemp("recover")
    train = write_toy_set(root / "train", 16, 1)
    torch.manual_seed(0)
    spec = InputSpec.for_kind("dual")
    net = ConcealNet(ModelConfig(in_channels=spec.num_channels, **TINY))
    trained_batchnorm(net, spread=0.4)
    ckpt = root / "orig.pt"
    checkpoint.save(ckpt, model=net, spec=spec, classes=["concealed_organic"], name="tiny",
                    alarm_threshold=0.3, provenance=checkpoint.provenance({}, "x.yaml", []))
    onnx_path = root / "tiny.onnx"
    export_onnx(ckpt, onnx_path, version="2.0.0", trace_hw=(64, 96))
    return root, train, net.eval(), onnx_path


def test_rebuilt_checkpoint_is_the_onnx_model_and_normalises_like_it_in_training(exported):
    root, train, original, onnx_path = exported
    cfg_path = recipe(root / "recipe.yaml", train)
    out = root / "rebuilt.pt"
    summary = recover(onnx_path, out, recipe=cfg_path, batches=1)
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in original.modules())
    assert summary["crops"] == 8 and summary["batchnorms"] == batchnorms
    ckpt = checkpoint.load(out)
    assert ckpt["name"] == "tiny" and ckpt["alarm_threshold"] == pytest.approx(0.3)
    assert ckpt["provenance"]["recovered_from"]["version"] == "2.0.0"
    rebuilt, spec = checkpoint.build_model(ckpt)
    assert spec.channels == InputSpec.for_kind("dual").channels

    x = torch.rand(2, spec.num_channels, 80, 112)
    with torch.no_grad():
        for a, b in zip(original(x), rebuilt(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # On the batch its statistics came from, training mode (the batch's own statistics)
    # computes what eval mode does: the BatchNorms were split at those statistics.
    (images,) = list(training_batches(recipe_config(cfg_path, None), 1))
    with torch.no_grad():
        evaluated = rebuilt.eval()(images)
        trained = rebuilt.train()(images)
    for a, b in zip(evaluated, trained, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)


def test_rebuilt_checkpoint_starts_a_recipe(exported, tmp_path):
    root, train, _, onnx_path = exported
    recover(onnx_path, tmp_path / "start.pt", recipe=recipe(tmp_path / "r.yaml", train),
            batches=1)
    cfg = recipe(tmp_path / "next.yaml", train).read_text().replace(
        str(tmp_path / "gone.pt"), str(tmp_path / "start.pt")).replace(
        f"  val: {{path: {tmp_path / 'gone.json'}}}\n", "")
    (tmp_path / "next.yaml").write_text(cfg)
    proc = subprocess.run([sys.executable, "-m", "detector.cli", "train", "--config",
                           tmp_path / "next.yaml"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tensors from a dual model (tiny)" in proc.stderr
    assert (tmp_path / "runs" / "rec" / "last.pt").is_file()


def test_another_network_or_a_foreign_file_is_refused(exported, tmp_path):
    root, train, _, onnx_path = exported
    wider = recipe(tmp_path / "wide.yaml", train, widths=[8, 12, 16, 24, 40])
    with pytest.raises(RecoverError, match=r"weight \(32, 24, 3, 3\) in the ONNX file"):
        recover(onnx_path, tmp_path / "x.pt", recipe=wider, batches=1)
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(RecoverError, match="not a concealscan export"):
        recover(foreign, tmp_path / "y.pt", recipe=wider)
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_script_reports_a_missing_recipe(exported, tmp_path):
    _, _, _, onnx_path = exported
    proc = subprocess.run([sys.executable, "scripts/checkpoint_from_onnx.py", onnx_path,
                           "--out", tmp_path / "z.pt"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "its recipe x.yaml is not here" in proc.stderr
