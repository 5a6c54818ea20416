"""Long fuzzing run of every scan and volume reader, with a memory ceiling; prints JSON figures.

    .venv/bin/python benchmarks/fuzz_readers.py --examples 3000 --mem-limit-mb 3072

Each case is written to a fresh folder, discovered with `discover_inputs` and read with
`read_input` at the workstation's default size limits. The outcome must be a `Scan`, a
`Volume` or a `ScanError`; a `ScanError` caused by running out of memory counts as a failure
(the header checks should have refused the file before any large allocation). The process runs
under ``RLIMIT_AS`` so a blow-up fails here instead of taking the machine down; peak RSS is
reported. ``tests/test_fuzz_memory.py`` runs this script briefly in CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_corpus import ALL_STRATEGIES, write_case  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

from detector.errors import ScanError  # noqa: E402
from detector.volume_inputs import discover_inputs, read_input  # noqa: E402

_OOM_WORDS = ("too large to decode in memory",)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that over from the
    parent across fork and exec, so under pytest it started at the test runner's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def outcome(folder: Path, name: str) -> list[str]:
    """Outcome names for every input found; raises if the property does not hold."""
    refs = discover_inputs([folder / name])
    if not refs:
        raise AssertionError(f"discovery dropped {name}: nothing reported")
    found = []
    for ref in refs:
        try:
            got = read_input(ref)
        except ScanError as exc:
            if not exc.reason:
                raise AssertionError("ScanError without a reason") from exc
            if any(w in exc.reason for w in _OOM_WORDS):
                raise AssertionError(f"ran out of memory: {exc.reason}") from exc
            found.append("ScanError")
            continue
        found.append(f"read {got.kind}")
    return found


def fuzz_kind(kind: str, examples: int, seed: int | None) -> dict:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    slowest = [0.0]  # seconds of the slowest case: a hang would show here
    start = time.perf_counter()

    @settings(max_examples=examples, deadline=None, database=None,
              derandomize=seed is None, suppress_health_check=list(HealthCheck))
    @given(case=ALL_STRATEGIES[kind])
    def run(case):
        name, files = case
        counts["cases"] += 1
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_case(Path(tmp), files)
            try:
                counts.update(outcome(Path(tmp), name))
            except Exception:  # record and keep fuzzing: the report lists every failure
                counts["failures"] += 1
                if len(failures) < 5:
                    failures.append(traceback.format_exc(limit=6))
        slowest[0] = max(slowest[0], time.perf_counter() - t0)

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()
    return {"kind": kind, **dict(counts), "seconds": round(time.perf_counter() - start, 1),
            "slowest_case_ms": round(slowest[0] * 1e3, 1),
            "peak_rss_mb_so_far": round(peak_rss_mb(), 1), "failure_samples": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="cases per kind")
    parser.add_argument("--kinds", nargs="*", default=list(ALL_STRATEGIES),
                        choices=list(ALL_STRATEGIES))
    parser.add_argument("--seed", type=int, default=None,
                        help="hypothesis seed (default: derandomized, the same cases each run)")
    parser.add_argument("--mem-limit-mb", type=int, default=3072,
                        help="address-space ceiling for this process (RLIMIT_AS)")
    args = parser.parse_args(argv)
    limit = args.mem_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import cv2  # noqa: F401 -- count the decoders' own footprint in the baseline
    import pydicom  # noqa: F401
    import tifffile  # noqa: F401

    baseline = peak_rss_mb()
    reports = [fuzz_kind(kind, args.examples, args.seed) for kind in args.kinds]
    total = {"cases": sum(r.get("cases", 0) for r in reports),
             "failures": sum(r.get("failures", 0) for r in reports),
             "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
             "mem_limit_mb": args.mem_limit_mb, "kinds": reports}
    print(json.dumps(total, indent=1))
    return 1 if total["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
