"""A real ``concealscan serve`` in a subprocess on a loopback port, for kill, log and load tests.

Readiness is polled (``GET /api/health`` until it answers), never assumed after a sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from station_helpers import free_port


class ServeProcess:
    """``concealscan serve --data DATA`` with the given models; output goes to ``log_path``."""

    def __init__(self, data: Path, models: list[Path], token: str, log_path: Path,
                 threads: int = 1, extra: tuple[str, ...] = ()) -> None:
        self.data, self.token, self.log_path = Path(data), token, Path(log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-W", "ignore", "-m", "detector.cli", "serve",
                    "--data", str(data), "--port", str(self.port), "--threads", str(threads),
                    *[a for m in models for a in ("--model", str(m))], *extra]
        self.proc: subprocess.Popen | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout_s: float = 60.0) -> ServeProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed by the child's exit)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                r = httpx.get(f"{self.url}/api/health", headers=self.headers, timeout=2.0)
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"serve did not answer within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or cleaned up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
