"""Say exactly what to install when a training dependency is missing."""

from __future__ import annotations

import importlib.util

from detector.errors import UsageError

INSTALL_HINT = "pip install 'concealscan[train]'  (from a checkout: pip install '.[train]')"


def require(*modules: str, extra: str = "train") -> None:
    """Raise `UsageError` naming the install command if any of ``modules`` is not importable."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked module (sys.modules[name] = None)
            found = False
        if not found:
            missing.append(name)
    if missing:
        hint = INSTALL_HINT.replace("[train]", f"[{extra}]")
        raise UsageError(f"this command needs {', '.join(missing)}, which is not installed. "
                         f"Install it with: {hint}")
