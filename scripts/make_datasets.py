"""Make the simulated data sets of configs/datasets.yaml that are missing, or check those here.

    python scripts/make_datasets.py --recipe configs/train/dual_more2.yaml   # what it trains on
    python scripts/make_datasets.py data/sim/calib data/sim/test --workers 8
    python scripts/make_datasets.py --check                                  # sets on disk vs table

Each set is ``concealscan synth --out FOLDER`` with the table's arguments and ``--resume``, so
an interrupted run continues (also one stopped while writing its annotations); a set whose
``manifest.json`` exists, which synth writes last, is left as it is.
Exit status: 0 done (or every set checked matches); 1 a set differs from the table or synth
failed; 64 a folder or recipe the table does not know, or a recipe that cannot be read; 130
interrupted (run it again: each set resumes where it stopped).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "configs" / "datasets.yaml"


def load_table() -> dict[str, dict]:
    return yaml.safe_load(TABLE.read_text())


class UnknownInput(ValueError):
    """A recipe that cannot be read; the message names it."""


def table_key(folder: str | Path) -> str:
    """``folder`` as the table writes it: relative to the repository, no ``./``, no trailing
    slash (``data/sim/t1/`` and ``./data/sim/t1`` are ``data/sim/t1``)."""
    path = Path(folder)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(ROOT)
        except ValueError:
            return str(folder)  # outside the repository: not in the table
    return str(PurePosixPath(path.as_posix()))


def recipe_sets(recipe: Path) -> list[str]:
    """The data set folders a training recipe names (train and val), in order; `UnknownInput`
    when the recipe cannot be read."""
    try:
        data = (yaml.safe_load(recipe.read_text()) or {}).get("data") or {}
        entries = [*data.get("train", []), data.get("val") or {}]
        return [table_key(Path(e["path"]).parent) for e in entries if e.get("path")]
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
        raise UnknownInput(f"--recipe {recipe}: not a readable training recipe: {exc}") from exc


def synth_argv(folder: str, spec: dict, workers: int) -> list[str]:
    argv = [sys.executable, "-m", "detector.cli", "synth", "--out", folder,
            "--count", str(spec["count"]), "--seed", str(spec["seed"]),
            "--workers", str(workers), "--resume"]
    if spec.get("config"):
        argv += ["--config", spec["config"]]
    if spec.get("kinds"):
        argv += ["--kinds", spec["kinds"]]
    return argv


def expected_manifest(spec: dict) -> dict:
    """The manifest fields a set made from ``spec`` has: seed, count and config digests."""
    from training.sim.config import load_config
    from training.sim_ct.config import load_ct_config

    if spec.get("config"):  # the table's config paths are the repository's, wherever this runs
        spec = {**spec, "config": str(ROOT / spec["config"])}
    if spec.get("kinds") != "ct":
        config = load_config(spec.get("config"))
        return {"seed": spec["seed"], "count": spec["count"], "config_sha256": config.digest()}
    config, ct = load_ct_config(spec.get("config"))
    return {"seed": spec["seed"], "count": spec["count"], "config_sha256": config.digest(),
            "ct_config": json.loads(json.dumps(ct.to_json()))}


def check(table: dict[str, dict]) -> int:
    bad = 0
    for folder, spec in table.items():
        path = ROOT / folder / "manifest.json"
        if not path.exists():
            print(f"{folder}: not here")
            continue
        have = json.loads(path.read_text())
        diff = {k: (have.get(k), v) for k, v in expected_manifest(spec).items()
                if have.get(k) != v}
        bad += bool(diff)
        print(f"{folder}: " + ("matches" if not diff else
                               "DIFFERS " + ", ".join(f"{k}: here {h!r}, table {t!r}"
                                                      for k, (h, t) in diff.items())))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", help="data set folders (keys of the table)")
    parser.add_argument("--recipe", action="append", default=[], type=Path,
                        help="make the sets this training recipe names (repeatable)")
    parser.add_argument("--workers", type=int, default=1, help="synth processes (default: 1)")
    parser.add_argument("--check", action="store_true",
                        help="compare the sets here with the table instead")
    args = parser.parse_args(argv)
    table = load_table()
    if args.check:
        return check(table)
    try:
        named = [f for r in args.recipe for f in recipe_sets(r)]
    except UnknownInput as exc:
        print(f"make_datasets: {exc}", file=sys.stderr)
        return 64
    folders = list(dict.fromkeys([*map(table_key, args.folders), *named]))
    if not folders:
        if args.recipe:  # it simulates on the fly (data.sim): nothing to make beforehand
            print(f"{', '.join(map(str, args.recipe))}: names no data set folder; nothing to "
                  f"make")
            return 0
        print("make_datasets: no folder or --recipe given", file=sys.stderr)
        return 64
    unknown = [f for f in folders if f not in table]
    if unknown:
        print(f"make_datasets: {unknown}: not in {TABLE} (known: {', '.join(table)})",
              file=sys.stderr)
        return 64
    try:
        return make(folders, table, args.workers)
    except KeyboardInterrupt:
        print("make_datasets: interrupted; run the same command again to continue (each set "
              "resumes where it stopped)", file=sys.stderr)
        return 130


def make(folders: list[str], table: dict[str, dict], workers: int) -> int:
    """Make each set of ``folders`` that has no manifest; 1 at the first synth that fails."""
    for folder in folders:
        if (ROOT / folder / "manifest.json").exists():  # what --check reads; written last
            print(f"{folder}: here")
            continue
        print(f"{folder}: making", flush=True)
        if subprocess.run(synth_argv(folder, table[folder], workers), cwd=ROOT).returncode:
            print(f"make_datasets: synth failed for {folder}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
