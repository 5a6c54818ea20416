"""``concealscan models``: the model registry: add, list, promote, roll back (never delete)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REQUIRES = ()  # reading and switching models needs no torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    lst = sub.add_parser("list", help="every version, its metrics, and which one is promoted")
    lst.add_argument("--json", action="store_true", help="one JSON entry per line")
    add = sub.add_parser("add", help="register an exported model (and its checkpoint)")
    add.add_argument("model", type=Path, metavar="MODEL.onnx")
    add.add_argument("--checkpoint", type=Path, help="the .pt it was exported from (needed "
                                                     "to retrain from this version; checked "
                                                     "against the model, needs torch)")
    add.add_argument("--version", required=True, help="registry version name")
    add.add_argument("--promote", action="store_true", help="also make it current")
    pro = sub.add_parser("promote", help="make VERSION the model services load")
    pro.add_argument("version", metavar="VERSION")
    pro.add_argument("--reason", default="promoted by hand")
    sub.add_parser("rollback", help="go back to the previously promoted version")
    for p in (lst, add, pro, sub.choices["rollback"]):
        p.add_argument("--registry", required=True, type=Path, metavar="REG")


def run(args: argparse.Namespace) -> int:
    from training import registry as reg_write

    reg = args.registry
    if args.action == "add":
        reg_write.add_version(reg, args.version, args.model, args.checkpoint,
                              metrics={}, data=[], note="added by hand")
        print(f"added {args.version}")
        if args.promote:
            reg_write.promote(reg, args.version, "added with --promote")
            print(f"promoted {args.version}")
    elif args.action == "promote":
        if reg_write.promote(reg, args.version, args.reason):
            print(f"promoted {args.version}; serve switches with POST /api/model/reload, "
                  "watch --model REGISTRY at its next scan")
        else:
            print(f"{args.version} is the promoted version already; nothing changed")
    elif args.action == "rollback":
        print(f"rolled back to {reg_write.rollback(reg)}")
    else:
        _list(reg, args.json)
    return 0


def _list(reg: Path, as_json: bool) -> None:
    from detector import registry as reg_read

    try:
        current = reg_read.current_version(reg)
    except reg_read.RegistryError as exc:
        current = None
        if "damaged" in str(exc):  # list what there is: it shows what to restore
            print(f"concealscan models: warning: {exc}", file=sys.stderr)
    entries = reg_read.versions(reg)
    if as_json:
        for e in entries:
            print(json.dumps({**e, "current": e["version"] == current}))
        return
    print(f"{'':2}{'version':<28} {'added':<26} {'parent':<16} {'Pd new/old @Pfa':<18} sha256")
    for e in entries:
        m = e.get("metrics") or {}
        gate = (f"{m['new']['pd']:.3f}/{m['old']['pd']:.3f}@{m['new']['target_pfa']:g}"
                if "new" in m else "-")
        mark = "* " if e["version"] == current else "  "
        print(f"{mark}{e['version']:<28} {e['added_at']:<26} {e.get('parent') or '-':<16} "
              f"{gate:<18} {e['sha256'][:12]}")
    print(f"current: {current or 'none promoted'}")
