"""Make the simulated data sets of configs/datasets.yaml that are missing, or check those here.

    python scripts/make_datasets.py --recipe configs/train/dual_more2.yaml   # what it trains on
    python scripts/make_datasets.py data/sim/calib data/sim/test --workers 8
    python scripts/make_datasets.py --check                                  # sets on disk vs table

Each set is ``concealscan synth --out FOLDER`` with the table's arguments and ``--resume``, so
an interrupted run continues (also one stopped while writing its annotations); a set whose
``manifest.json`` exists, which synth writes last, is left as it is.
Exit status: 0 done (or every set checked matches); 1 a set differs from the table or synth
failed; 64 a folder or recipe the table does not know.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "configs" / "datasets.yaml"


def load_table() -> dict[str, dict]:
    return yaml.safe_load(TABLE.read_text())


def recipe_sets(recipe: Path) -> list[str]:
    """The data set folders a training recipe names (train and val), in order."""
    data = yaml.safe_load(recipe.read_text()).get("data", {})
    entries = [*data.get("train", []), data.get("val") or {}]
    return [str(Path(e["path"]).parent) for e in entries if e.get("path")]


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
    folders = list(dict.fromkeys(
        [*args.folders, *(f for r in args.recipe for f in recipe_sets(r))]))
    unknown = [f for f in folders if f not in table]
    if unknown or not folders:
        print(f"make_datasets: {unknown or 'no folder or --recipe given'}: not in {TABLE} "
              f"(known: {', '.join(table)})", file=sys.stderr)
        return 64
    for folder in folders:
        if (ROOT / folder / "manifest.json").exists():  # what --check reads; written last
            print(f"{folder}: here")
            continue
        print(f"{folder}: making", flush=True)
        if subprocess.run(synth_argv(folder, table[folder], args.workers), cwd=ROOT).returncode:
            print(f"make_datasets: synth failed for {folder}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
