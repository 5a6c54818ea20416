"""``concealscan synth``: simulate labelled dual-energy parcel scans (see docs/simulation.md),
or with ``--kinds ct`` reconstructed CT volumes of the same scenes (see docs/ct.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REQUIRES = ("numpy", "cv2", "yaml", "tqdm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--count", type=int, metavar="N",
                        help="number of scans (not with --replay)")
    parser.add_argument("--seed", type=int, help="data set seed (default: 0; not with --replay)")
    parser.add_argument("--config", metavar="YAML",
                        help="simulator config, e.g. configs/synth/default.yaml (default: "
                             "built-in defaults, the same values)")
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="processes; the output is identical for any K (default: 1)")
    parser.add_argument("--prefix",
                        help="scan name prefix, no path separators (default: synth_, and ct_ for "
                             "CT volumes)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the data set (or interrupted run) in --out: its files, "
                             "as its annotations, manifest and journal list them, are deleted "
                             "first; other files are left")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out (same --seed, --config, "
                             "--prefix, --kinds) where it stopped; the result is the same as "
                             "an uninterrupted run's")
    parser.add_argument("--kinds", choices=("xray", "ct"),
                        help="xray: 2-D dual/gray/colour scans (default); ct: CT volumes "
                             "(NAME.npy + NAME.json, bbox3d labels; --config holds scene: and "
                             "ct: sections, see training/sim_ct/config.py)")
    parser.add_argument("--replay", metavar="SCENE_JSON",
                        help="re-render one NAME_scene.json into --out instead")
    parser.add_argument("--add-benign-objects", action="store_true",
                        help="instead of simulating, give the data set in --out (2-D: "
                             "written before 2026-11-29; CT: before its 20:52 UTC) the COCO "
                             "image field benign_object, from its NAME_scene.json records (for "
                             "augment.hard_negatives and the false-alarm causes of evaluate)")


def _check(args: argparse.Namespace) -> None:
    from detector.errors import UsageError
    from training.sim.journal import JOURNAL
    from training.sim.writer import MANIFEST

    if args.add_benign_objects:
        if not (Path(args.out) / "annotations.json").is_file():
            raise UsageError(f"--add-benign-objects: {args.out} holds no annotations.json")
        return
    if args.replay is not None:
        given = [f"--{name}" for name in ("count", "seed", "kinds", "prefix", "config")
                 if getattr(args, name) is not None]
        if given:  # the record holds every choice; these would be ignored
            raise UsageError(f"--replay: not with {', '.join(given)} (the scene record says "
                             f"what to render)")
    elif args.count is None:
        raise UsageError("--count is required (or --replay SCENE_JSON)")
    args.seed = 0 if args.seed is None else args.seed
    args.kinds = args.kinds or "xray"
    if args.prefix is None:
        args.prefix = "ct_" if args.kinds == "ct" else "synth_"
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count: expected >= 1, got {args.count}")
    if args.workers < 1:
        raise UsageError(f"--workers: expected >= 1, got {args.workers}")
    if args.seed < 0:
        raise UsageError(f"--seed: expected >= 0, got {args.seed}")
    if any(c in args.prefix for c in "/\\"):
        raise UsageError(f"--prefix: a file name prefix, without '/' or '\\' (the scans are "
                         f"written in --out), got {args.prefix!r}")
    if args.resume and (args.overwrite or args.replay is not None):
        raise UsageError("--resume: not with --overwrite or --replay")
    out = Path(args.out)
    interrupted = (out / JOURNAL).exists()
    # A finished run writes its manifest last but one (the journal is removed after it); an
    # annotations.json beside a journal is from a run stopped while finishing.
    if not args.overwrite and ((out / MANIFEST).exists() or (
            (out / "annotations.json").exists() and not interrupted)):
        raise UsageError(f"{args.out} already holds a data set; pass --overwrite to replace it")
    if not (args.overwrite or args.resume or args.replay) and interrupted:
        raise UsageError(f"{args.out} holds an interrupted synth run ({JOURNAL}); pass "
                         f"--resume to continue it or --overwrite to start again")


def _replay(args: argparse.Namespace) -> int:
    import json

    from detector.errors import UsageError
    from training.sim.generate import render_record
    from training.sim.writer import write_scan
    from training.sim_ct.generate import render_ct_record
    from training.sim_ct.writer import write_volume

    try:
        record = json.loads(Path(args.replay).read_text())
        ct = isinstance(record, dict) and record.get("kind") == "ct"
        result = render_ct_record(record) if ct else render_record(record)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--replay {args.replay}: not a usable scene record: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if ct:
        write_volume(out, result)
    else:
        write_scan(out, result, compression=int(record.get("png_compression", 1)))
    print(f"replayed {result.name} into {out}")
    return 0


def _clear_out(args: argparse.Namespace) -> None:
    """With --overwrite, delete the data set already in --out (the files its documents list,
    nothing else); say which other files the folder holds, which are left as they are."""
    from training.sim.writer import remove_data_set

    out = Path(args.out)
    others = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if args.overwrite:
        removed, others = remove_data_set(out)
        if removed:
            print(f"--overwrite: removed the {removed} files of the data set in {out}",
                  file=sys.stderr)
    if others and not args.resume:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        print(f"note: {out} also holds {len(others)} file(s) that are not from a data set "
              f"made here ({shown}); they are left as they are", file=sys.stderr)


def _journaled(write, args: argparse.Namespace, *config) -> dict:
    """``write`` (`write_dataset` or `write_ct_dataset`) with the run's arguments; a journal
    that another run wrote is a usage error naming what differs."""
    from detector.errors import UsageError
    from training.sim.journal import JournalError

    _clear_out(args)
    try:
        return write(args.out, *config, args.count, args.seed, workers=args.workers,
                     prefix=args.prefix, progress=True,
                     resume=args.resume)
    except JournalError as exc:
        raise UsageError(f"--resume: {exc}") from exc


def _stopped(args: argparse.Namespace, write) -> int:
    """``write()``, or exit status 74 with one line naming the folder and the reason when
    --out cannot be written (full disk, read-only folder), and 130 on Ctrl-C; both say that
    --resume continues where the run stopped."""
    from detector.outputs import EXIT_OUTPUT

    unit = "volumes" if args.kinds == "ct" else "scans"
    resumable = args.replay is None and not args.add_benign_objects
    try:
        return write()
    except OSError as exc:
        path = getattr(exc, "path", None) or exc.filename or args.out
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        hint = (f"the {unit} finished so far are kept: once there is room (or the folder can "
                f"be written), the same command with --resume continues" if resumable else
                "nothing else was changed")
        print(f"concealscan synth: error: cannot write in {args.out}: {reason} ({path}); "
              f"{hint}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        if not resumable:
            raise
        print(f"interrupted; the {unit} finished so far are kept: the same command with "
              f"--resume continues", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    from training.deps import require

    require(*REQUIRES)
    _check(args)
    if args.add_benign_objects:
        return _stopped(args, lambda: _add_benign_objects(args))
    if args.replay is not None:
        return _stopped(args, lambda: _replay(args))
    if args.kinds == "ct":
        return _run_ct(args)
    from training.sim.config import load_config
    from training.sim.writer import write_dataset

    config = load_config(args.config)
    return _stopped(args, lambda: _report(_journaled(write_dataset, args, config), "scans",
                                          args.out))


def _add_benign_objects(args: argparse.Namespace) -> int:
    from detector.errors import UsageError
    from training.sim.writer import add_benign_objects

    try:
        total = add_benign_objects(args.out)
    except ValueError as exc:
        raise UsageError(f"--add-benign-objects: {exc}") from exc
    print(f"recorded {total} benign objects in {Path(args.out) / 'annotations.json'}")
    return 0


def _report(doc: dict, unit: str, out: str) -> int:
    positives = sum(1 for im in doc["images"] if im["positive"])
    decoys = sum(len(im["benign_packet"]) for im in doc["images"])
    print(f"wrote {len(doc['images'])} {unit} ({positives} with concealed packets, "
          f"{len(doc['annotations'])} packets, {decoys} benign look-alikes) to {out}")
    return 0


def _run_ct(args: argparse.Namespace) -> int:
    from training.sim_ct.config import load_ct_config
    from training.sim_ct.writer import write_ct_dataset

    config, ct = load_ct_config(args.config)
    return _stopped(args, lambda: _report(
        _journaled(write_ct_dataset, args, config, ct), "CT volumes", args.out))
