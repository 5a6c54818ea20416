"""Console reporting shared by the workstation commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


LINE_EVERY = 60.0  # seconds between progress lines where stderr is not a terminal


class Progress:
    """Progress of long work on stderr: a tqdm bar on a terminal; where stderr goes to a file
    (nohup, a batch job's log) a plain line every ``every`` seconds (default `LINE_EVERY`)
    instead, with the count, the pace and the time left, because a bar there is one
    ever-growing line of carriage returns. ``enabled=False`` shows nothing."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True,
                 every: float | None = None) -> None:
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr,
                        disable=not (enabled and tty), dynamic_ncols=True, leave=False)
        self.lines = enabled and not tty
        self.total, self.desc, self.unit = total, desc, unit
        self.every = LINE_EVERY if every is None else every
        self.done = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        now = time.monotonic()
        if not self.lines or now - self.last < self.every or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.done}/{self.total}{extra}, {rate:.2f} {self.unit}/s, "
              f"about {left / 60:.0f} min left", file=sys.stderr, flush=True)

    def set_postfix(self, **values: str) -> None:
        """Shown after the count (``loss=0.612``)."""
        self.bar.set_postfix(**values)
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable[T], desc: str, unit: str = "it") -> Iterator[T]:
    """``items`` with a `Progress` on stderr when there are two or more."""
    items = list(items)
    with Progress(len(items), desc, unit, enabled=len(items) >= 2) as bar:
        for item in items:
            yield item
            bar.update()
