"""``concealscan users``: create and list the station's operators (tokens shown once)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    add = sub.add_parser("add", help="create an operator and print its token (last line)")
    add.add_argument("name", help="operator name: letters, digits, ._@-")
    add.add_argument("--data", required=True, type=Path, help="the station's data folder")
    lst = sub.add_parser("list", help="list operator names")
    lst.add_argument("--data", required=True, type=Path, help="the station's data folder")


def run(args: argparse.Namespace) -> int:
    from detector.station import auth
    from detector.station.db import DatabaseError, open_database

    try:
        db = open_database(args.data / "station.sqlite")
        if args.action == "list":
            for name in db.operator_names():
                print(name)
            return 0
        token = auth.add_operator(db, args.name)
    except (DatabaseError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    print(f"operator {args.name!r} created; the token is shown only now, keep it secret:",
          file=sys.stderr)
    print(token)
    return 0
