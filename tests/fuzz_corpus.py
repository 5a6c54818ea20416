"""Every fuzz strategy (2-D readers, pairs, CT volumes, JPEG) in one ``(name, files)`` form, and
a writer that lays drawn cases out as folders for end-to-end runs of ``concealscan detect``."""

from __future__ import annotations

from pathlib import Path

from fuzz_cases import STRATEGIES, SUFFIX, png_files
from fuzz_volume_cases import VOLUME_STRATEGIES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _single(kind: str):
    name = "scan" + SUFFIX[kind]
    return STRATEGIES[kind].map(lambda data: (name, {name: data}))


_pairs = st.tuples(png_files(), png_files()).map(
    lambda hl: ("bag_high.png", {"bag_high.png": hl[0], "bag_low.png": hl[1]}))

#: kind -> strategy drawing ``(name to read, {relative path: bytes})``.
ALL_STRATEGIES = {**{k: _single(k) for k in STRATEGIES}, "dual_pair": _pairs,
                  **VOLUME_STRATEGIES}


def write_case(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_corpus(root: Path, per_kind: int, kinds=None) -> list[Path]:
    """Draw ``per_kind`` cases of each kind (deterministic) into ``root/KIND_NNN/``; return the
    path to give ``detect`` for each case."""
    paths: list[Path] = []
    for kind in kinds or ALL_STRATEGIES:
        _draw_kind(root, kind, per_kind, paths)
    return paths


def _draw_kind(root: Path, kind: str, per_kind: int, paths: list[Path]) -> None:
    count = [0]

    @settings(max_examples=per_kind, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=ALL_STRATEGIES[kind])
    def draw(case):
        name, files = case
        folder = root / f"{kind}_{count[0]:03d}"
        count[0] += 1
        write_case(folder, files)
        paths.append(folder / name)

    draw()
