"""Audit the installed dependencies for known vulnerabilities with PyPI's own advisory data.

    .venv/bin/python scripts/audit_deps.py                 # the project's declared dependencies
    .venv/bin/python scripts/audit_deps.py --extras serve  # plus those of some extras

Why not pip-audit: on this project's network PyPI's per-release JSON (``/pypi/NAME/VERSION/json``,
what pip-audit asks) answers 404, so pip-audit skips every package and still exits 0, and
api.osv.dev does not resolve. The project JSON (``/pypi/NAME/json``) does answer, with the
OSV/PYSEC/GHSA advisories of the *latest* release. So each package is asked for its release
first, then for the project: an installed version that is the latest is audited exactly; an
older one is reported as not audited (never as clean).

Exit status: 0 no known vulnerability in what could be audited; 1 vulnerabilities found;
2 (with ``--strict``) some package could not be audited; 3 PyPI could not be asked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi"
#: fetch(url) -> parsed JSON, or None for 404; raises OSError for any other failure.
Fetch = Callable[[str], dict | None]


@dataclass
class Finding:
    name: str
    version: str
    audited: bool
    latest: str | None = None
    vulns: list[dict] = field(default_factory=list)
    note: str = ""


def fetch_json(url: str, timeout: float = 30.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https)
            return json.load(r)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise OSError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise OSError(f"{url}: {exc}") from exc


def declared(extras: list[str]) -> list[str]:
    """Distribution names the project declares (base, plus the given extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return sorted({re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in reqs})


def audit_one(name: str, version: str, fetch: Fetch) -> Finding:
    release = fetch(f"{PYPI}/{name}/{version}/json")
    if release is not None:  # full PyPI access: exact advisories for this release
        return Finding(name, version, True, release["info"]["version"],
                       release.get("vulnerabilities", []))
    project = fetch(f"{PYPI}/{name}/json")
    if project is None:
        return Finding(name, version, False, note="not on PyPI")
    latest = project["info"]["version"]
    if latest == version:
        return Finding(name, version, True, latest, project.get("vulnerabilities", []))
    return Finding(name, version, False, latest,
                   note=f"installed {version}, PyPI's data here covers only {latest}")


def audit(names: list[str], fetch: Fetch) -> list[Finding]:
    findings = []
    for name in names:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra that is not installed here
        findings.append(audit_one(name, version, fetch))
    return findings


def report(findings: list[Finding], strict: bool) -> int:
    vulnerable = [f for f in findings if f.audited and f.vulns]
    unaudited = [f for f in findings if not f.audited]
    for f in vulnerable:
        for v in f.vulns:
            print(f"VULNERABLE {f.name} {f.version}: {v.get('id')} "
                  f"(fixed in {', '.join(v.get('fixed_in') or []) or 'no release yet'}) "
                  f"{(v.get('summary') or v.get('details') or '')[:120]}")
    for f in unaudited:
        print(f"not audited {f.name} {f.version}: {f.note}")
    print(f"audited {len(findings) - len(unaudited)} of {len(findings)} packages; "
          f"{sum(len(f.vulns) for f in vulnerable)} known vulnerabilities; "
          f"{len(unaudited)} not audited")
    if vulnerable:
        return 1
    return 2 if strict and unaudited else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=[], help="also audit these extras")
    parser.add_argument("--strict", action="store_true",
                        help="exit 2 if any package could not be audited")
    args = parser.parse_args(argv)
    try:
        findings = audit(declared(args.extras), fetch_json)
    except OSError as exc:
        print(f"audit_deps: error: cannot ask PyPI: {exc}", file=sys.stderr)
        return 3
    return report(findings, args.strict)


if __name__ == "__main__":
    sys.exit(main())
