"""Multi-process training: torchrun with 2 CPU processes (gloo, localhost); the loss falls."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from test_training import write_config
from toy_data import write_toy_set


@pytest.mark.slow
def test_torchrun_two_cpu_processes_gloo(tmp_path):
    train = write_toy_set(tmp_path / "train", 32, 3)
    cfg = write_config(tmp_path / "ddp.yaml", train, None, epochs=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
         "--nproc_per_node=2", "-m", "detector.cli", "train", "--config", str(cfg)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (tmp_path / "runs" / "t_dual" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4  # one row per epoch, written by rank 0 only
    assert proc.stdout.count("best checkpoint: ") == 1, proc.stdout
    lines = [line.split() for line in proc.stderr.splitlines() if line.startswith("epoch=")]
    assert len(lines) == 4
    # the keys in the order a single process prints them (the losses as the loss gives them)
    assert [kv.split("=")[0] for kv in lines[0]] == ["epoch", "cls", "box", "total", "lr",
                                                     "seconds"]
    assert float(rows[-1]["total"]) < float(rows[0]["total"]), rows
