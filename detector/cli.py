"""The ``concealscan`` command line: one tool, one subcommand per job.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``,
and optionally ``REQUIRES`` (modules it needs beyond the base install, e.g. ``("torch",)``).
Only the chosen subcommand's module is imported, so workstation commands never load torch and
a command whose ``REQUIRES`` are missing stops at once with the exact install command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from detector.errors import UsageError
from detector.outputs import EXIT_OUTPUT, OutputError

EXIT_OK, EXIT_SCAN_FAILED, EXIT_USAGE = 0, 2, 64

# name -> (module, one-line help). Workstation side first, then the ML engineer's side.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("detector.commands.check",
              "read scans and report kind, size and any problem (no model needed)"),
    "detect": ("detector.commands.detect",
               "detect concealed items: results.jsonl, overlays and a summary"),
    "info": ("detector.commands.info", "show what an exported model says about itself"),
    "serve": ("detector.commands.serve",
              "the operator station: HTTP API and web viewer over a data folder"),
    "watch": ("detector.commands.watch",
              "process every scan dropped into a folder, exactly once, even across restarts"),
    "users": ("detector.commands.users", "add or list station operators (tokens)"),
    "synth": ("training.commands.synth",
              "simulate labelled dual-energy parcel scans or CT volumes (configs/synth*/)"),
    "train": ("training.commands.train", "train a detector from a recipe (configs/train/*.yaml)"),
    "evaluate": ("training.commands.evaluate",
                 "AP50 (CT: 3-D AP), Pd/Pfa, ROC/FROC on a COCO set; pick the alarm threshold"),
    "compare": ("training.commands.compare",
                "Pd of several models at equal Pfa from their evaluate reports (bootstrap "
                "CIs), and packets found at equal false boxes per scan"),
    "dataset": ("training.commands.dataset",
                "COCO sets from YOLO-txt or Pascal VOC labels, or from the station's reviews"),
    "export": ("training.commands.export", "export a checkpoint to ONNX (optionally INT8)"),
    "second-look": ("training.commands.second_look",
                    "fit a dual, gray or CT model's second look at its boxes (measured, rescored "
                    "by trees)"),
    "retrain": ("training.commands.retrain",
                "fine-tune on reviewed scans; promote only if Pd at the operating Pfa holds"),
    "models": ("training.commands.models", "model registry: add, list, promote, rollback"),
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "a scan failed" here, so use 64 (EX_USAGE)."""

    def error(self, message: str):  # noqa: D102
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="concealscan",
        description="X-ray/CT concealment detector for customs and postal parcel inspection.",
        epilog="Run 'concealscan COMMAND --help' for a command's options. Exit status: 0 all "
               "scans processed, 2 some scan failed (still reported), 64 usage error, 74 the "
               "output cannot be written (full disk, read-only folder), 1 training stopped "
               "(e.g. a non-finite loss).",
    )
    from detector import __version__

    parser.add_argument("--version", action="version", version=f"concealscan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
    return parser


def _check_requirements(module_name: str) -> None:
    """Stop before parsing if the command needs an extra that is not installed."""
    requires = getattr(importlib.import_module(module_name), "REQUIRES", ())
    if requires:
        extra = "serve" if {"fastapi", "uvicorn"} & set(requires) else "train"
        require_modules(tuple(requires), extra)


def require_modules(modules: tuple[str, ...], extra: str) -> None:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked module (sys.modules[name] = None)
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise UsageError(f"this command needs {', '.join(missing)}, which is not installed. "
                         f"Install it with: pip install 'concealscan[{extra}]' "
                         f"(from a checkout: pip install '.[{extra}]')")


class _ClosedPipeGuard:
    """stdout that survives its reader going away (``concealscan detect DIR | head``): the
    rest of the output goes to /dev/null instead of ending the command with a traceback."""

    def __init__(self, real) -> None:
        self._real = real

    def _closed(self) -> None:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._real.fileno())
        except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
            pass

    def write(self, text: str) -> int:
        try:
            return self._real.write(text)
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._real.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def main(argv: list[str] | None = None) -> int:
    real_stdout = sys.stdout
    sys.stdout = _ClosedPipeGuard(real_stdout)
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    finally:
        sys.stdout = real_stdout


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(chosen if chosen in COMMANDS else None)
        if chosen in COMMANDS and not {"-h", "--help"} & set(argv):
            _check_requirements(COMMANDS[chosen][0])
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args._run(args))
    except UsageError as exc:
        print(f"concealscan {chosen}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as exc:  # a folder it cannot write (owner, read-only mount, full disk)
        print(f"concealscan {chosen}: error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
