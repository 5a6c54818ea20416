"""``concealscan serve``: the operator station (HTTP API + web viewer) over one data folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from detector.errors import UsageError

REQUIRES = ("fastapi", "uvicorn", "multipart")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="folder for received scans, results and the station database")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument("--model", type=Path, action="append", metavar="M",
                        help="a .onnx model, or a model registry folder (then the service can "
                             "switch to a newly promoted model: POST /api/model/reload); "
                             "repeat for several scan kinds; default: the bundled models")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads per scan (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="scans decoded and detected at once; about one per CPU core "
                             "(default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0,
                        help="largest accepted request body (default: %(default)s MB)")


class QueryRedacted(logging.Filter):
    """Access-log lines without query strings: a client that puts its token in the URL
    (refused, 401) must not leave it in the station's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            path = str(args[2])
            if "?" in path:
                args[2] = path.split("?", 1)[0] + "?[query not logged]"
                record.args = tuple(args)
        return True


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from detector.station.app import create_app
    from detector.station.detectors import detector_loader
    from detector.station.station import Station

    if not 0 < args.port < 65536:
        raise UsageError(f"--port: expected 1..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise UsageError(f"--max-upload-mb: expected > 0, got {args.max_upload_mb}")
    load, switchable = detector_loader(args.model, args.threads)
    if args.jobs < 1 or args.threads < 1:
        raise UsageError(f"--jobs/--threads: expected >= 1, got {args.jobs}/{args.threads}")
    station = Station(args.data, load(), jobs=args.jobs)  # OutputError: exit 74 (cli)
    recovered = station.recover()
    if recovered:
        print(f"finished {recovered} scan(s) left unrecorded by the last run", file=sys.stderr)
    if args.host not in _LOOPBACK:
        print(f"warning: listening on {args.host}: tokens travel in clear unless a TLS proxy "
              "sits in front", file=sys.stderr)
    app = create_app(station, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                     load_detector=load if switchable else None)
    print(f"model {station.model.get('version')}; viewer at http://{args.host}:{args.port}/ "
          f"(API schema at /openapi.json)", file=sys.stderr)
    logging.getLogger("uvicorn.access").addFilter(QueryRedacted())
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
