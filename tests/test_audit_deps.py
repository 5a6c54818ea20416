"""scripts/audit_deps.py decides from PyPI's answers, never passes what it could not check and
fails on a known vulnerability. PyPI is replaced by recorded answers: no network in tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "audit_deps", Path(__file__).resolve().parents[1] / "scripts" / "audit_deps.py")
audit_deps = importlib.util.module_from_spec(_spec)
sys.modules["audit_deps"] = audit_deps  # dataclasses look their module up there
_spec.loader.exec_module(audit_deps)

PYCRYPTO = {"info": {"version": "2.6.1"}, "vulnerabilities": [  # as PyPI answered, trimmed
    {"id": "PYSEC-2017-94", "fixed_in": [], "summary": "weak RNG"},
    {"id": "PYSEC-2018-97", "fixed_in": [], "summary": "heap overflow"}]}


def fake_pypi(answers: dict[str, dict | None]):
    def fetch(url: str):
        if url not in answers:
            raise OSError(f"{url}: Name or service not known")
        return answers[url]
    return fetch


def test_latest_release_with_advisories_is_vulnerable_and_exits_1(capsys):
    fetch = fake_pypi({"https://pypi.org/pypi/pycrypto/2.6.1/json": None,
                       "https://pypi.org/pypi/pycrypto/json": PYCRYPTO})
    finding = audit_deps.audit_one("pycrypto", "2.6.1", fetch)
    assert finding.audited and [v["id"] for v in finding.vulns] == ["PYSEC-2017-94",
                                                                    "PYSEC-2018-97"]
    assert audit_deps.report([finding], strict=False) == 1
    assert "VULNERABLE pycrypto 2.6.1: PYSEC-2017-94" in capsys.readouterr().out


def test_older_release_is_not_audited_never_clean(capsys):
    fetch = fake_pypi({"https://pypi.org/pypi/numpy/2.4.6/json": None,
                       "https://pypi.org/pypi/numpy/json": {"info": {"version": "2.5.5"},
                                                            "vulnerabilities": []}})
    finding = audit_deps.audit_one("numpy", "2.4.6", fetch)
    assert not finding.audited and "covers only 2.5.5" in finding.note
    assert audit_deps.report([finding], strict=False) == 0
    assert audit_deps.report([finding], strict=True) == 2
    assert "audited 0 of 1 packages" in capsys.readouterr().out


def test_release_endpoint_is_used_where_pypi_answers_it():
    fetch = fake_pypi({"https://pypi.org/pypi/requests/2.19.0/json": {
        "info": {"version": "2.19.0"},
        "vulnerabilities": [{"id": "PYSEC-2018-28", "fixed_in": ["2.20.0"]}]}})
    finding = audit_deps.audit_one("requests", "2.19.0", fetch)
    assert finding.audited and finding.vulns[0]["fixed_in"] == ["2.20.0"]


def test_pypi_unreachable_is_an_error_not_a_pass(monkeypatch, capsys):
    monkeypatch.setattr(audit_deps, "fetch_json", fake_pypi({}))
    assert audit_deps.main([]) == 3
    assert "cannot ask PyPI" in capsys.readouterr().err


def test_declared_dependencies_come_from_pyproject():
    names = audit_deps.declared(["serve"])
    assert {"numpy", "onnxruntime", "pydicom", "fastapi", "uvicorn"} <= set(names)
    assert "torch" not in names
    with pytest.raises(KeyError):
        audit_deps.declared(["no-such-extra"])
