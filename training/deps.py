"""Say exactly what to install when a training dependency is missing."""

from __future__ import annotations

from detector.cli import require_modules


def require(*modules: str, extra: str = "train") -> None:
    """Raise `UsageError` naming the install command if any of ``modules`` is not importable."""
    require_modules(tuple(modules), extra)
