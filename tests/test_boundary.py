"""The workstation side never needs torch or ``training``; training commands say what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import write_pair

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_detector_imports_and_reads_without_torch(tmp_path):
    (high, _), *_ = write_pair(tmp_path, "p")
    proc = run_python(f"""
        import detector, detector.cli, detector.commands.check
        from detector import read_scan
        scan = read_scan({str(high)!r})
        assert scan.kind == "dual", scan.kind
        assert not any(m == "training" or m.startswith("training.") for m in sys.modules), \\
            sorted(m for m in sys.modules if m.startswith("training"))
        assert sys.modules["torch"] is None
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_every_workstation_command_module_imports_without_torch():
    proc = run_python("""
        import importlib
        from detector.cli import COMMANDS
        for name, (module, _) in COMMANDS.items():
            if module.startswith("detector."):
                importlib.import_module(module)
        assert not any(m.startswith("training") for m in sys.modules)
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr


def test_missing_training_dependency_names_the_install_command():
    proc = run_python("""
        from detector.errors import UsageError
        from training.deps import require
        try:
            require("torch", "numpy")
        except UsageError as exc:
            print(exc)
        else:
            raise SystemExit("require() did not fail without torch")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "needs torch" in proc.stdout and "pip install 'concealscan[train]'" in proc.stdout
    assert "numpy" not in proc.stdout.split("needs")[1].split("which")[0]


def test_commands_with_missing_extras_say_what_to_install():
    """Every command that declares REQUIRES, run without torch/fastapi, names the install."""
    proc = run_python("""
        import importlib, io, contextlib
        sys.modules["fastapi"] = None
        sys.modules["uvicorn"] = None
        from detector.cli import COMMANDS, main
        checked = []
        for name, (module, _) in COMMANDS.items():
            requires = getattr(importlib.import_module(module), "REQUIRES", ())
            if not {"torch", "fastapi", "uvicorn"} & set(requires):
                continue
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main([name])
            assert code == 64, (name, code)
            assert "pip install 'concealscan[" in err.getvalue(), (name, err.getvalue())
            checked.append(name)
        print(" ".join(checked))
    """)
    assert proc.returncode == 0, proc.stderr
