"""The watch folder: every scan dropped into INBOX is processed exactly once, even across a kill.

Each scan moves through states that live on disk, so a restart knows where it stopped:

1. *claimed*: ``INBOX/work/KEY/claim.json`` lists its files, then they are renamed in;
2. *decided*: ``OUT/results/KEY.json`` is written (temp file + ``os.replace``); this is the
   commit point, a scan with a result is never run again;
3. *reported*: the line is appended to ``OUT/results.jsonl`` (once: appended keys are known);
4. *done*: ``INBOX/work/KEY`` is renamed to ``INBOX/processed/KEY`` or ``INBOX/failed/KEY``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from detector.outputs import remove_temporaries, write_atomic
from detector.readers import ScanRef, discover_scans
from detector.station import analysis as an

log = logging.getLogger("concealscan.watch")

#: Names a scanner (or a copy tool) uses while a file is still being written.
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart")
_KEY_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WatchConfig:
    inbox: Path
    out: Path
    settle_s: float = 2.0  # a file unchanged this long is complete
    pair_timeout_s: float = 120.0  # a lone _high/_low this old is processed (and fails) alone
    max_attempts: int = 3  # a scan that crashed the watcher this often goes to failed/
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("settle_s", "pair_timeout_s", "poll_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"WatchConfig.{name}: expected >= 0, got {getattr(self, name)}")
        if self.max_attempts < 1:
            raise ValueError(f"WatchConfig.max_attempts: expected >= 1, got {self.max_attempts}")


class WatchLockedError(RuntimeError):
    """Another watcher already serves this INBOX."""


class Watcher:
    """Poll INBOX and process what is complete; `recover` first finishes what a kill left."""

    def __init__(self, config: WatchConfig, analyze: an.Analyzer,
                 record: Callable[[str, list[Path], an.Analysis | None], object] | None = None,
                 step: Callable[[str], None] = lambda name: None) -> None:
        self.cfg = config
        self.analyze = analyze
        self.record = record  # the station, when --data is given: (source, files, analysis)
        self._step = step  # tests stop here to act out a kill at each state change
        inbox = Path(config.inbox)
        self.work, self.processed, self.failed = (inbox / n for n in
                                                  ("work", "processed", "failed"))
        self.results = Path(config.out) / "results"
        self.overlays = Path(config.out) / "overlays"
        self.jsonl = Path(config.out) / "results.jsonl"
        for d in (self.work, self.processed, self.failed, self.results, self.overlays):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(inbox / ".watch.lock", "a")  # noqa: SIM115 (held while we live)
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise WatchLockedError(f"{inbox}: another 'concealscan watch' is running") from exc
        self._reported = self._load_reported()

    def close(self) -> None:
        self._lock_fh.close()

    # -- the loop ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Finish every scan a previous run left in ``work/``; return how many."""
        keys = sorted(p.name for p in self.work.iterdir() if p.is_dir())
        for key in keys:
            log.warning("resuming %s left by an interrupted run", key)
            if self._complete_claim(key):
                self._process(key)
        return len(keys)

    def poll_once(self, now: float | None = None) -> int:
        """Claim and process every complete scan now in INBOX; return how many."""
        now = time.time() if now is None else now
        done = 0
        for ref in self._ready(now):
            key = self._claim(ref)
            self._process(key)
            done += 1
        return done

    def run(self, should_stop: Callable[[], bool]) -> None:
        self.recover()
        while not should_stop():
            if self.poll_once() == 0:
                time.sleep(self.cfg.poll_s)

    # -- discovery and claiming --------------------------------------------------------------
    def _ready(self, now: float) -> list[ScanRef]:
        files = []
        for p in sorted(Path(self.cfg.inbox).iterdir()):
            if p.name.startswith(".") or p.suffix.lower() in _PARTIAL_SUFFIXES or not p.is_file():
                continue
            if now - p.stat().st_mtime >= self.cfg.settle_s:
                files.append(p)
        ready = []
        for ref in discover_scans(files):
            newest = max(p.stat().st_mtime for p in ref.files)
            if ref.problem is not None and now - newest < self.cfg.pair_timeout_s:
                continue  # the other half may still be on its way
            ready.append(ref)
        return ready

    def _claim(self, ref: ScanRef) -> str:
        key = self._new_key(ref.id)
        folder = self.work / key
        folder.mkdir()
        claim = {"id": ref.id, "files": [p.name for p in ref.files], "attempts": 0}
        write_atomic(folder / "claim.json", json.dumps(claim).encode())
        for p in ref.files:
            self._step("claim-file")
            os.rename(p, folder / p.name)
        return key

    def _new_key(self, scan_id: str) -> str:
        base = _KEY_RE.sub("_", scan_id)[:100] or "scan"
        key, n = base, 1
        while any((d / key).exists() for d in (self.work, self.processed, self.failed)) or \
                (self.results / f"{key}.json").exists():
            n += 1
            key = f"{base}~{n}"
        return key

    def _complete_claim(self, key: str) -> bool:
        """Move in the files a kill left in INBOX; False if the claim never got written."""
        folder = self.work / key
        claim_path = folder / "claim.json"
        if not claim_path.exists():  # killed before the claim: no file was moved yet,
            remove_temporaries(folder)  # but the claim may be there half-written
            os.rmdir(folder)
            return False
        for name in json.loads(claim_path.read_text())["files"]:
            if not (folder / name).exists() and (Path(self.cfg.inbox) / name).exists():
                os.rename(Path(self.cfg.inbox) / name, folder / name)
        return True

    # -- processing --------------------------------------------------------------------------
    def _process(self, key: str) -> None:
        folder = self.work / key
        result_path = self.results / f"{key}.json"
        files = self._claimed_files(key)
        analysis = None
        if result_path.exists():
            line = json.loads(result_path.read_text())
        else:
            analysis = self._with_overlay(self._analyse(key, files))
            line = analysis.line
            if analysis.overlay_png is not None:
                write_atomic(self.overlays / f"{key}.png", analysis.overlay_png)
            self._step("before-result")
            write_atomic(result_path, json.dumps(line).encode())
        self._step("after-result")
        if self.record is not None:
            self.record(f"watch:{key}", [folder / p.name for p in files], analysis)
        self._report(key, line)
        self._step("after-report")
        target = self.processed if an.line_status(line) == "ok" else self.failed
        os.rename(folder, target / key)
        log.info("%s: %s -> %s", key, an.line_status(line), target.name)

    @staticmethod
    def _with_overlay(analysis: an.Analysis) -> an.Analysis:
        """``overlays/KEY.png`` is a result, as ``detect``'s overlays are: drawn now, and
        handed to the station (``--data``) with the analysis so it is drawn once."""
        if analysis.overlay_png is not None or analysis.detection is None:
            return analysis
        from detector.station.views import overlay_png

        return replace(analysis, overlay_png=overlay_png(analysis.scan, analysis.detection))

    def _claimed_files(self, key: str) -> list[Path]:
        claim = json.loads((self.work / key / "claim.json").read_text())
        return [self.work / key / name for name in claim["files"]]

    def _analyse(self, key: str, files: list[Path]) -> an.Analysis:
        claim_path = self.work / key / "claim.json"
        claim = json.loads(claim_path.read_text())
        claim["attempts"] += 1
        write_atomic(claim_path, json.dumps(claim).encode())
        present = [p for p in files if p.exists()]
        refs = discover_scans(present) if present else []
        problem = None
        if claim["attempts"] > self.cfg.max_attempts:
            problem = f"processing was interrupted {claim['attempts'] - 1} times; not retried"
        elif len(present) != len(files):
            missing = sorted(p.name for p in files if not p.exists())
            problem = f"claimed files disappeared from the work folder: {missing}"
        elif len(refs) != 1:
            problem = f"expected one scan in {[p.name for p in files]}, found {len(refs)}"
        if problem is not None:
            ref = ScanRef(id=key, files=tuple(files))
            return an.Analysis(line=an.error_line(ref, problem, {}))
        ref = ScanRef(id=key, files=refs[0].files, problem=refs[0].problem)
        try:
            return self.analyze(ref)
        except Exception as exc:  # a bug must still put the scan in failed/, never drop it
            log.exception("analysis of %s crashed", key)
            return an.Analysis(line=an.error_line(ref, f"internal error: {type(exc).__name__}: "
                                                       f"{exc}", {}))

    # -- results.jsonl, exactly once ---------------------------------------------------------
    def _load_reported(self) -> set[str]:
        """Keys already in results.jsonl; a line cut short by a kill is dropped (and redone)."""
        if not self.jsonl.exists():
            return set()
        data = self.jsonl.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.jsonl, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        return {json.loads(line)["id"] for line in data.splitlines() if line.strip()}

    def _report(self, key: str, line: dict) -> None:
        if key in self._reported:
            return
        with open(self.jsonl, "ab") as fh:
            fh.write(json.dumps(line).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._reported.add(key)
