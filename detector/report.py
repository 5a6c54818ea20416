"""Console reporting shared by the workstation commands."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "it") -> Iterator[T]:
    """A tqdm progress bar on stderr, shown only when stderr is a terminal and work is long."""
    from tqdm import tqdm

    items = list(items)
    yield from tqdm(items, desc=desc, unit=unit, file=sys.stderr,
                    disable=len(items) < 2 or not sys.stderr.isatty())
