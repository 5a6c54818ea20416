"""``concealscan watch``: process every scan dropped into a folder, exactly once."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from functools import partial
from pathlib import Path

from detector.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inbox", type=Path, metavar="INBOX",
                        help="folder the scanner writes to (scans, CT volume files, a CT "
                             "series as a folder); inputs move to INBOX/processed/ or "
                             "INBOX/failed/")
    parser.add_argument("--out", required=True, type=Path,
                        help="results folder: results.jsonl, results/NAME.json, overlays/")
    parser.add_argument("--data", type=Path, default=None,
                        help="also record each scan in this station data folder (the viewer's "
                             "queue)")
    parser.add_argument("--model", type=Path, action="append", metavar="M",
                        help="a .onnx model or a model registry folder (a newly promoted "
                             "model is used from the next scan on, logged); repeat for "
                             "several scan kinds (default: the bundled models)")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads (default %(default)s, as detect: on a shared "
                             "2-core workstation 1 thread measured ~2x faster than 2 when "
                             "another process is busy)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds a file must be unchanged before it is read "
                             "(default: %(default)s)")
    parser.add_argument("--pair-timeout", type=float, default=120.0,
                        help="seconds to wait for the other half of a _high/_low pair (or a "
                             "volume's sidecar or second energy) before what is there is "
                             "processed alone and fails (default: %(default)s)")
    parser.add_argument("--once", action="store_true",
                        help="process what is ready now, then exit (no watching)")


def run(args: argparse.Namespace) -> int:
    from detector.outputs import EXIT_OUTPUT
    from detector.station.detectors import FollowPromoted
    from detector.station.watch import WatchConfig, Watcher, WatchLockedError

    if not args.inbox.is_dir():
        raise UsageError(f"INBOX {args.inbox}: not a folder")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    analyze = FollowPromoted(args.model, args.threads)  # a newly promoted model: next scan
    handle = analyze.handle
    record = take_source = None
    try:
        if args.data is not None:
            from detector.station.station import Station

            station = Station(args.data, handle)
            analyze.on_switch = station.switch_detector  # the queue shows it too
            station.recover()
            record = station.receive_analysed
            take_source = partial(station.take_source, owner=str(args.inbox.resolve()))
        config = WatchConfig(inbox=args.inbox, out=args.out, settle_s=args.settle,
                             pair_timeout_s=args.pair_timeout)
        watcher = Watcher(config, analyze, record=record, take_source=take_source)
    except (ValueError, WatchLockedError) as exc:  # (an OutputError: exit 74, from the cli)
        raise UsageError(str(exc)) from exc
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # finish the scan in hand, then stop
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        if args.once:
            watcher.recover()
            watcher.poll_once(should_stop=lambda: bool(stop))
            if watcher.waiting:
                print(f"concealscan watch: {watcher.waiting} input(s) still being written "
                      f"(changed within --settle {args.settle:g} s) or waiting for their other "
                      f"parts (up to --pair-timeout {args.pair_timeout:g} s); run again",
                      file=sys.stderr)
            if watcher.failures:
                print(f"concealscan watch: {watcher.failures} input(s) could not be assessed "
                      f"(in {args.inbox / 'failed'}; manual check)", file=sys.stderr)
                return 2
        else:
            print(f"watching {args.inbox} (model {handle.model.get('version')}); "
                  "Ctrl-C to stop", file=sys.stderr)
            watcher.run(lambda: bool(stop))
    except OSError as exc:  # full disk, read-only OUT: every scan's state is on disk
        print(f"concealscan watch: error: {exc}; stopped. Nothing is lost: restart when it "
              "can write again and every unfinished scan is resumed", file=sys.stderr)
        return EXIT_OUTPUT
    finally:
        watcher.close()
    return 0
