"""``concealscan users``: create, list, re-issue and revoke the station's operators' tokens
(a token is shown once)."""

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
    lst = sub.add_parser("list", help="list operator names; a revoked one is marked "
                                      "'(revoked)'")
    lst.add_argument("--data", required=True, type=Path, help="the station's data folder")
    tok = sub.add_parser("token", help="give an operator a new token (the old one stops "
                                       "working at once) and print it (last line)")
    tok.add_argument("name")
    tok.add_argument("--data", required=True, type=Path, help="the station's data folder")
    rev = sub.add_parser("revoke", help="stop an operator's token working (someone left, a "
                                        "token leaked); their decisions keep their name")
    rev.add_argument("name")
    rev.add_argument("--data", required=True, type=Path, help="the station's data folder")


def run(args: argparse.Namespace) -> int:
    from detector.station import auth
    from detector.station.db import DatabaseError, open_database

    try:
        db = open_database(args.data / "station.sqlite")
        if args.action == "list":
            for name, revoked in auth.operators(db):
                print(f"{name} (revoked)" if revoked else name)
            return 0
        if args.action == "revoke":
            auth.revoke(db, args.name)
            print(f"operator {args.name!r}: token revoked (takes effect on the next request)",
                  file=sys.stderr)
            return 0
        token = (auth.new_token if args.action == "token" else auth.add_operator)(db, args.name)
    except (DatabaseError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    done = "has a new token" if args.action == "token" else "created"
    print(f"operator {args.name!r} {done}; the token is shown only now, keep it secret:",
          file=sys.stderr)
    print(token)
    return 0
