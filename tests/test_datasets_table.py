"""configs/datasets.yaml, the table that scripts/make_datasets.py makes data sets from, covers
every recipe's data and each of its entries is a valid synth call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("make_datasets", "scripts/make_datasets.py")
make_datasets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_datasets)
TABLE = make_datasets.load_table()


@pytest.mark.parametrize("recipe", sorted(Path("configs/train").glob("*.yaml")), ids=str)
def test_every_recipe_names_only_sets_of_the_table(recipe):
    folders = make_datasets.recipe_sets(recipe)
    assert folders and set(folders) <= set(TABLE), set(folders) - set(TABLE)


@pytest.mark.parametrize("folder", sorted(TABLE))
def test_each_entry_is_a_synth_call(folder):
    entry = TABLE[folder]
    assert set(entry) <= {"count", "seed", "config", "kinds"} and entry["count"] >= 1
    argv = make_datasets.synth_argv(folder, entry, workers=3)
    assert argv[argv.index("--out") + 1] == folder and "--resume" in argv
    assert "seed" in make_datasets.expected_manifest(entry)  # its config loads


def test_unknown_folder_is_a_usage_error(capsys):
    assert make_datasets.main(["data/nope"]) == 64
    assert "data/nope" in capsys.readouterr().err
