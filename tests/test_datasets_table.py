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


def test_the_table_is_read_from_any_working_folder(monkeypatch, tmp_path):
    """--check run from outside the repository: its configs are the repository's."""
    monkeypatch.chdir(tmp_path)
    for folder, entry in TABLE.items():
        if entry.get("config"):
            assert "seed" in make_datasets.expected_manifest(entry), folder


def test_unknown_folder_is_a_usage_error(capsys):
    assert make_datasets.main(["data/nope"]) == 64
    assert "data/nope" in capsys.readouterr().err


@pytest.fixture
def small_table(tmp_path, monkeypatch):
    """make_datasets on a table of two tiny sets under ``tmp_path``, recording the synth calls
    instead of running them."""
    table = {"data/sim/a": {"count": 2, "seed": 1}, "data/sim/b": {"count": 2, "seed": 2}}
    calls: list[list[str]] = []

    def run(argv, cwd):
        calls.append(argv)
        return make_datasets.subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(make_datasets, "ROOT", tmp_path)
    monkeypatch.setattr(make_datasets, "load_table", lambda: table)
    monkeypatch.setattr(make_datasets.subprocess, "run", run)
    return tmp_path, calls


def test_a_set_is_here_only_with_its_manifest_as_check_says(small_table, capsys):
    """synth writes manifest.json last: a set with annotations.json and no manifest was cut
    short while finishing, and is made (resumed) again, not skipped as here."""
    root, calls = small_table
    for name in "ab":
        (root / "data/sim" / name).mkdir(parents=True)
        (root / "data/sim" / name / "annotations.json").write_text('{"images": [')
    (root / "data/sim/b/manifest.json").write_text("{}")
    assert make_datasets.main(["data/sim/a", "data/sim/b"]) == 0
    out = capsys.readouterr().out
    assert "data/sim/a: making" in out and "data/sim/b: here" in out
    assert [argv[argv.index("--out") + 1] for argv in calls] == ["data/sim/a"]
    make_datasets.check(make_datasets.load_table())
    assert "data/sim/a: not here" in capsys.readouterr().out


def _doc_synth_commands():
    """(file, line number, --out, --count, --seed, --kinds) of each synth command in the docs."""
    import re

    for doc in [Path("README.md"), *sorted(Path("docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text().splitlines(), start=1):
            out, seed = re.search(r"synth .*--out (\S+)", line), re.search(r"--seed (\d+)", line)
            if out and seed:
                count, kinds = re.search(r"--count (\d+)", line), re.search(r"--kinds (\w+)", line)
                yield (f"{doc}:{number}", out.group(1).rstrip("/`"), count and int(count[1]),
                       int(seed[1]), kinds[1] if kinds else "xray")


def test_the_docs_make_the_sets_of_the_table():
    """A synth command in the docs for a folder of the table makes that set (count and seed),
    and a 2-D one for another folder uses no 2-D set's seed: configs that keep the default
    scenes (small.yaml) would draw that set's scenes, the held-out test set's for seed 3. (CT
    sets share seeds on purpose: data/sim_ct_dual/* are data/sim_ct/*'s scenes at two
    energies.)"""
    seeds = {spec["seed"]: folder for folder, spec in TABLE.items() if "kinds" not in spec}
    wrong = []
    for where, out, count, seed, kinds in _doc_synth_commands():
        spec = TABLE.get(out)
        if spec and (count not in (None, spec["count"]) or seed != spec["seed"]):
            wrong.append(f"{where}: {out} --count {count} --seed {seed}, table {spec}")
        elif not spec and kinds == "xray" and seed in seeds:
            wrong.append(f"{where}: {out} uses the seed of {seeds[seed]}")
    assert not wrong, wrong


def test_folders_are_normalised_to_table_keys(small_table):
    root, calls = small_table
    assert make_datasets.main(["data/sim/a/", "./data/sim/b", str(root / "data/sim/a")]) == 0
    assert [argv[argv.index("--out") + 1] for argv in calls] == ["data/sim/a", "data/sim/b"]


def test_recipes_that_cannot_be_read_or_name_no_set(small_table, tmp_path, capsys):
    assert make_datasets.main(["--recipe", str(tmp_path / "nope.yaml")]) == 64
    assert "nope.yaml: not a readable training recipe" in capsys.readouterr().err
    fly = tmp_path / "fly.yaml"
    fly.write_text("data:\n  sim: [{seed: 7, count: 100}]\n")
    assert make_datasets.main(["--recipe", str(fly)]) == 0
    assert "fly.yaml: names no data set folder; nothing to make" in capsys.readouterr().out


def test_ctrl_c_is_one_line_and_exit_130(small_table, monkeypatch, capsys):
    def interrupted(argv, cwd):
        raise KeyboardInterrupt

    monkeypatch.setattr(make_datasets.subprocess, "run", interrupted)
    assert make_datasets.main(["data/sim/a"]) == 130
    assert "interrupted; run the same command again to continue" in capsys.readouterr().err
