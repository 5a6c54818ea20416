"""Load on the operator station: concurrent clients upload scans over loopback for a fixed time.

    .venv/bin/python benchmarks/load_service.py --seconds 60 --clients 4 --size 768 1024

Starts a real ``concealscan serve`` (bundled models unless ``--model``) on a fresh data folder,
warms it up, then each client loops: upload a dual-energy pair (16-bit PNG, ``--size`` H W),
and after every upload with probability ``--decide`` review it as the web viewer does (open the
scan and its views, post a decision, refresh the queue).
Prints JSON: scans/s, upload latency p50/p99, failed requests, the server's RSS at the start
and end of the measured window and its peak. ``tests/test_service_load.py`` runs it briefly.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from conftest import parcel_counts  # noqa: E402
from serve_process import ServeProcess  # noqa: E402
from station_helpers import png_bytes  # noqa: E402

from detector.station import auth  # noqa: E402
from detector.station.db import open_database  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))]


class Worker(threading.Thread):
    def __init__(self, url: str, token: str, files: dict, decide: float, until: float,
                 seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.files, self.decide, self.until = url, files, decide, until
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(seed)
        self.upload_ms: list[tuple[float, float]] = []  # (finished at, latency ms)
        self.other_ms: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as http:
            while time.monotonic() < self.until:
                t0 = time.monotonic()
                try:
                    r = http.post("/api/scans", files=self.files)
                except httpx.HTTPError as exc:
                    self.failures.append(f"upload: {type(exc).__name__}: {exc}")
                    continue
                now = time.monotonic()
                if r.status_code != 201 or r.json()["status"] != "ok":
                    self.failures.append(f"upload: {r.status_code} {r.text[:200]}")
                    continue
                self.upload_ms.append((now, (now - t0) * 1e3))
                if self.rng.random() < self.decide:
                    self._review(http, r.json()["id"], r.json()["alarm"])

    def _review(self, http: httpx.Client, sid: str, alarm: bool) -> None:
        # What the web viewer asks for (detector/web/app.js): open the scan (its line, the two
        # base views, the heat layer), record a decision, read the line again, refresh the queue.
        for method, url, kw in (("get", f"/api/scans/{sid}", {}),
                                ("get", f"/api/scans/{sid}/image.png", {}),
                                ("get", f"/api/scans/{sid}/gray.png", {}),
                                ("get", f"/api/scans/{sid}/heat.png", {}),
                                ("post", f"/api/scans/{sid}/decision",
                                 {"json": {"decision": "confirm" if alarm else "clear"}}),
                                ("get", f"/api/scans/{sid}", {}),
                                ("get", "/api/scans?limit=200", {})):
            t0 = time.monotonic()
            try:
                r = getattr(http, method)(url, **kw)
            except httpx.HTTPError as exc:
                self.failures.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            if r.status_code >= 300:
                self.failures.append(f"{url}: {r.status_code} {r.text[:200]}")
            self.other_ms.append((time.monotonic() - t0) * 1e3)


def run_load(data: Path, models: list[Path], seconds: float, clients: int, size_hw, decide: float,
             warmup_s: float, threads: int, jobs: int = 2) -> dict:
    token = auth.add_operator(open_database(data / "station.sqlite"), "load")
    high = png_bytes(parcel_counts(tuple(size_hw), 16, seed=1))
    low = png_bytes(parcel_counts(tuple(size_hw), 16, seed=2))
    files = {"high": ("h.png", high), "low": ("l.png", low)}
    with ServeProcess(data, models, token, data.parent / "serve.log", threads=threads,
                      extra=("--jobs", str(jobs))) as srv:
        with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=60) as http:
            warm_until = time.monotonic() + warmup_s
            while time.monotonic() < warm_until:
                http.post("/api/scans", files=files)
        rss_start = rss_mb(srv.proc.pid)
        start = time.monotonic()
        until = start + seconds
        workers = [Worker(srv.url, token, files, decide, until, seed=i) for i in range(clients)]
        for w in workers:
            w.start()
        samples = [(0.0, rss_start)]  # (seconds into the window, RSS MB)
        while any(w.is_alive() for w in workers):
            samples.append((time.monotonic() - start, rss_mb(srv.proc.pid)))
            time.sleep(0.2)  # sampling interval, not a wait for a condition
        elapsed = time.monotonic() - start
        rss_end = rss_mb(srv.proc.pid)
    uploads = [ms for w in workers for _, ms in w.upload_ms]
    other = [ms for w in workers for ms in w.other_ms]
    failures = [f for w in workers for f in w.failures]
    return {"seconds": round(elapsed, 1), "clients": clients, "size_hw": list(size_hw),
            "scans": len(uploads), "scans_per_s": round(len(uploads) / elapsed, 2),
            "upload_p50_ms": round(percentile(uploads, 50), 1),
            "upload_p99_ms": round(percentile(uploads, 99), 1),
            "review_requests": len(other), "review_p50_ms": round(percentile(other, 50), 1),
            "review_p99_ms": round(percentile(other, 99), 1),
            "failed_requests": len(failures), "failure_samples": failures[:5],
            "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
            "rss_peak_mb": round(max(r for _, r in samples), 1),
            # A leak grows all the time; allocator warm-up levels off. Compare the peak of
            # each half of the window: growth from the first to the second is the leak signal.
            "rss_peak_first_half_mb": round(_peak(samples, 0, elapsed / 2), 1),
            "rss_peak_second_half_mb": round(_peak(samples, elapsed / 2, elapsed), 1),
            "server_threads": threads, "server_jobs": jobs}


def _peak(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    inside = [r for t, r in samples if t0 <= t <= t1]
    return max(inside) if inside else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=[768, 1024], metavar=("H", "W"))
    parser.add_argument("--model", type=Path, action="append",
                        help="model(s) to serve (default: the bundled ones)")
    parser.add_argument("--decide", type=float, default=0.3,
                        help="probability per upload of a review as the viewer does it "
                             "(open the scan and its views, decide, refresh the queue)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--threads", type=int, default=1, help="serve --threads")
    parser.add_argument("--jobs", type=int, default=2, help="serve --jobs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="concealscan-load-") as tmp:
        report = run_load(Path(tmp) / "data", args.model or [], args.seconds, args.clients,
                          args.size, args.decide, args.warmup, args.threads,
                          args.jobs)
    print(json.dumps(report, indent=1))
    return 1 if report["failed_requests"] else 0


if __name__ == "__main__":
    sys.exit(main())
