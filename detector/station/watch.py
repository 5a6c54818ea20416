"""The watch folder: every scan dropped into INBOX is processed exactly once, even across a kill.

What counts as one input: a 2-D scan file or a ``_high``/``_low`` pair; a CT volume file
(``.npy``, multi-page TIFF, multi-frame DICOS/DICOM CT) with its ``NAME.json`` sidecar and its
second-energy ``NAME_<kVp>kvp`` file (with its sidecar) if any; a folder dropped whole, which
must hold one DICOM/DICOS CT series. Parts that belong together wait for each other up to
``pair_timeout_s``, then what is there is processed (and fails, for manual check).

Each scan moves through states that live on disk, so a restart knows where it stopped:

1. *claimed*: ``INBOX/work/KEY/.claim.json`` lists its files, then they are renamed in (a
   hidden name: inputs never start with a dot, so none can land on it; a scan called
   ``claim.json`` once replaced the record and stopped the watcher for good);
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

from detector.dicom_ct import sort_dicom_folder
from detector.outputs import remove_temporaries, write_atomic
from detector.readers import ScanRef, discover_scans
from detector.station import analysis as an
from detector.station.storage import as_output_error, check_writable
from detector.volume_inputs import (
    VOLUME_SUFFIXES,
    InputRef,
    VolumeRef,
    discover_inputs,
    energy_main,
    is_volume_file,
)

log = logging.getLogger("concealscan.watch")

#: Names a scanner (or a copy tool) uses while a file is still being written.
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart")
_KEY_RE = re.compile(r"[^A-Za-z0-9._-]+")
#: The record of one claimed input in its work folder (hidden: no input is called so).
CLAIM = ".claim.json"


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
                 step: Callable[[str], None] = lambda name: None,
                 take_source: Callable[[str], bool] | None = None) -> None:
        self.cfg = config
        self.analyze = analyze
        self.record = record  # the station, when --data is given: (source, files, analysis)
        # the station's reservation of ``watch:KEY`` (`Station.take_source`): another inbox
        # feeding it, or an archived processed/ and results/, may have used KEY before
        self.take_source = take_source
        self._step = step  # tests stop here to act out a kill at each state change
        inbox = Path(config.inbox)
        self.work, self.processed, self.failed = (inbox / n for n in
                                                  ("work", "processed", "failed"))
        self.results = Path(config.out) / "results"
        self.overlays = Path(config.out) / "overlays"
        self.jsonl = Path(config.out) / "results.jsonl"
        try:  # wrong owner or a read-only mount: stop now, naming the folder and its owner
            for d in (self.work, self.processed, self.failed, self.results, self.overlays):
                d.mkdir(parents=True, exist_ok=True)
            for d in (inbox, self.work):  # listed at each poll, and inputs renamed out
                check_writable(d, listed=True)
            for d in (self.processed, self.failed, self.results, self.overlays,
                      *([self.jsonl] if self.jsonl.exists() else [])):
                check_writable(d)
            # held while we live; O_NOFOLLOW: a link planted as the lock file is not followed
            fd = os.open(inbox / ".watch.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND
                         | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise as_output_error(exc) from exc
        self._lock_fh = os.fdopen(fd, "a")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise WatchLockedError(f"{inbox}: another 'concealscan watch' is running") from exc
        self._reported = self._load_reported()
        self.failures = 0  # inputs this watcher sent to failed/ (`watch --once` exits 2)
        self.waiting = 0  # entries the last poll left: being written, or waiting for parts

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

    def poll_once(self, now: float | None = None,
                  should_stop: Callable[[], bool] = lambda: False) -> int:
        """Claim and process every complete scan now in INBOX, or up to the first scan after
        which ``should_stop()`` says so (a backlog of thousands must not hold up a SIGTERM);
        return how many."""
        now = time.time() if now is None else now
        done = 0
        for ref in self._ready(now):
            if should_stop():
                break
            key = self._claim(ref)
            self._process(key)
            done += 1
        return done

    def run(self, should_stop: Callable[[], bool]) -> None:
        """`recover`, then poll until ``should_stop()``: the scan in hand is finished, the
        rest stays in INBOX for the next start."""
        self.recover()
        while not should_stop():
            if self.poll_once(should_stop=should_stop) == 0 and not should_stop():
                time.sleep(self.cfg.poll_s)
        log.info("stopping: the scan in hand is finished; what is still in %s waits for the "
                 "next start", self.cfg.inbox)

    # -- discovery and claiming --------------------------------------------------------------
    def _ready(self, now: float) -> list[InputRef]:
        inbox = Path(self.cfg.inbox)
        reserved = {self.work, self.processed, self.failed}
        files, folders, links = [], [], []
        self.waiting = 0  # still being written, or (below) waiting for their other parts
        for p in sorted(inbox.iterdir()):
            if p.name.startswith(".") or p in reserved:
                continue
            if p.suffix.lower() in _PARTIAL_SUFFIXES:
                self.waiting += 1
            elif p.is_symlink():  # never followed: it could point anywhere on the machine
                if now - p.lstat().st_mtime >= self.cfg.settle_s:
                    links.append(p)
                else:
                    self.waiting += 1
            elif p.is_dir():
                if self._settled_folder(p, now):
                    folders.append(p)
                else:
                    self.waiting += 1
            elif p.is_file():
                if now - p.stat().st_mtime >= self.cfg.settle_s:
                    files.append(p)
                else:
                    self.waiting += 1
        settled = set(files)
        volumes = [p for p in files if _volume_suffix(p) and is_volume_file(p)]
        # a sidecar or a second-energy file goes with its main volume, not on its own
        parts = {p.with_suffix(".json") for p in volumes}
        parts |= {p for p in volumes if (main := energy_main(p)) is not None and main.exists()}
        # a JSON file is a volume's sidecar that may come before it (or its volume is still
        # being written): it waits for the pair timeout, then fails alone
        for p in files:
            if p.suffix.lower() == ".json" and p not in parts and \
                    now - p.stat().st_mtime < self.cfg.pair_timeout_s:
                parts.add(p)
                self.waiting += 1
        ready: list[InputRef] = []
        for ref in discover_inputs([p for p in files if p not in parts]):
            owned = _owned_files(ref)
            waiting = any(p not in settled for p in owned)  # a part still being written
            if isinstance(ref, ScanRef) and ref.problem is not None:
                waiting = True  # the other half of a pair may still be on its way
            elif isinstance(ref, VolumeRef) and not ref.path_.with_suffix(".json").exists() \
                    and ref.path_.suffix.lower() in VOLUME_SUFFIXES:
                waiting = True  # a .npy reads only with its sidecar (voxel size)
            elif isinstance(ref, VolumeRef) and energy_main(ref.path_) is not None:
                waiting = True  # a second energy whose main volume has not come (yet)
            newest = max((p.lstat().st_mtime for p in owned if p.exists() or p.is_symlink()),
                         default=now)
            if waiting and now - newest < self.cfg.pair_timeout_s:
                self.waiting += 1
                continue
            ready.append(ref)
        ready += [ScanRef(id=p.stem, files=(p,), problem=(
            "a symbolic link: the watch folder reads no scan through a link (it could point "
            "anywhere on this machine); copy or move the scan itself into INBOX"))
            for p in links]
        for folder in folders:
            inside = list(_walk(folder))
            if not inside and now - folder.stat().st_mtime < self.cfg.pair_timeout_s:
                self.waiting += 1  # made empty, to be filled: wait for the slices
                continue
            if links := [p for p in inside if p.is_symlink()]:
                ready.append(ScanRef(id=folder.name, files=(folder,), problem=(
                    f"a folder holding symbolic links ({links[0].name}...): the watch folder "
                    "reads no slice through a link; copy the slices themselves")))
            elif sort_dicom_folder(folder)[0]:
                ready.append(VolumeRef(folder.name, folder))
            else:
                ready.append(ScanRef(id=folder.name, files=(folder,), problem=(
                    "a folder that holds no DICOM/DICOS CT series; the watch folder takes "
                    "2-D scans and volume files dropped into INBOX itself, and a folder only "
                    "as one CT series")))
        return ready

    def _settled_folder(self, folder: Path, now: float) -> bool:
        """A dropped folder is complete when neither it nor anything in it changed for
        ``settle_s`` and it holds no file still being written."""
        times = [folder.stat().st_mtime]
        for p in _walk(folder):
            if p.suffix.lower() in _PARTIAL_SUFFIXES:
                return False
            times.append(p.lstat().st_mtime)
        return now - max(times) >= self.cfg.settle_s

    def _claim(self, ref: InputRef) -> str:
        key = self._new_key(ref.id)
        folder = self.work / key
        folder.mkdir()
        files = [p for p in _owned_files(ref) if p.exists() or p.is_symlink()]
        claim = {"id": ref.id, "files": [p.name for p in files], "attempts": 0}
        if isinstance(ref, VolumeRef):
            claim["volume"] = {"main": ref.path_.name,
                               "low": None if ref.low is None else ref.low.name,
                               "low_kvp": ref.low_kvp}
        elif ref.problem is not None:  # decided now: a folder or a link is not read again
            claim["problem"] = ref.problem
        write_atomic(folder / CLAIM, json.dumps(claim).encode())
        for p in files:
            self._step("claim-file")
            os.rename(p, folder / p.name)
        return key

    def _new_key(self, scan_id: str) -> str:
        base = _KEY_RE.sub("_", scan_id)[:100] or "scan"
        key, n = base, 1
        while any((d / key).exists() for d in (self.work, self.processed, self.failed)) or \
                (self.results / f"{key}.json").exists() or key in self._reported or \
                (self.take_source is not None and not self.take_source(f"watch:{key}")):
            n += 1
            key = f"{base}~{n}"
        return key

    def _complete_claim(self, key: str) -> bool:
        """Move in the files a kill left in INBOX; False if the claim never got written."""
        folder = self.work / key
        claim_path = folder / CLAIM
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
            if self.record is not None and an.line_kind(line) == "ct":
                # the station keeps the volume as read: read it again, but record the line
                # that was decided (results.jsonl and the station must say the same)
                fresh = self._analyse(key, files, count=False)
                if fresh.volume is not None or an.line_status(line) == "error":
                    analysis = replace(fresh, line=line)
        else:
            analysis = self._with_overlay(self._analyse(key, files))
            line = self._where_it_ends(key, analysis.line)
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
        self.failures += target is self.failed
        os.rename(folder, target / key)
        log.info("%s: %s -> %s", key, an.line_status(line), target.name)

    def _where_it_ends(self, key: str, line: dict) -> dict:
        """``line`` with its ``scan`` path where the input will lie once done (processed/ or
        failed/), not in work/, which is emptied."""
        target = self.processed if an.line_status(line) == "ok" else self.failed
        scan = str(line.get("scan") or "")
        work = str(self.work / key)
        if scan.startswith(work):
            line = {**line, "scan": str(target / key) + scan[len(work):]}
        return line

    @staticmethod
    def _with_overlay(analysis: an.Analysis) -> an.Analysis:
        """``overlays/KEY.png`` is a result, as ``detect``'s overlays are: drawn now, and
        handed to the station (``--data``) with the analysis so it is drawn once."""
        if analysis.overlay_png is not None or analysis.detection is None:
            return analysis
        from detector.station.views import overlay_png

        return replace(analysis, overlay_png=overlay_png(analysis.scan, analysis.detection))

    def _claimed_files(self, key: str) -> list[Path]:
        claim = json.loads((self.work / key / CLAIM).read_text())
        return [self.work / key / name for name in claim["files"]]

    def _analyse(self, key: str, files: list[Path], count: bool = True) -> an.Analysis:
        """``count``: an attempt at deciding (a kill during it counts towards
        ``max_attempts``); False for re-reading a decided volume for the station."""
        claim_path = self.work / key / CLAIM
        claim = json.loads(claim_path.read_text())
        if count:
            claim["attempts"] += 1
            write_atomic(claim_path, json.dumps(claim).encode())
        present = [p for p in files if p.exists() or p.is_symlink()]
        volume = claim.get("volume")
        refs = [] if volume or claim.get("problem") or not present else discover_scans(present)
        problem = None
        if claim["attempts"] > self.cfg.max_attempts:
            problem = f"processing was interrupted {claim['attempts'] - 1} times; not retried"
        elif len(present) != len(files):
            missing = sorted(p.name for p in files if p not in present)
            problem = f"claimed files disappeared from the work folder: {missing}"
        elif claim.get("problem"):
            problem = claim["problem"]
        elif not volume and len(refs) != 1:
            problem = f"expected one scan in {[p.name for p in files]}, found {len(refs)}"
        if problem is not None:
            ref = ScanRef(id=key, files=tuple(files))
            return an.Analysis(line=an.error_line(ref, problem, {}))
        if volume:
            work = self.work / key
            ref = VolumeRef(key, work / volume["main"],
                            None if volume["low"] is None else work / volume["low"],
                            volume["low_kvp"])
        else:
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


def _volume_suffix(path: Path) -> bool:
    return path.suffix.lower() in (*VOLUME_SUFFIXES, ".tif", ".tiff", ".dcm", "")


def _owned_files(ref: InputRef) -> list[Path]:
    """Every file (or the folder) one input is made of, as the watch folder moves it: a
    volume's sidecar and second-energy file (with its sidecar) go with it."""
    if isinstance(ref, ScanRef):
        return list(ref.files)
    files = [ref.path_]
    if not ref.path_.is_dir():
        files.append(ref.path_.with_suffix(".json"))
    if ref.low is not None:
        files += [ref.low, ref.low.with_suffix(".json")]
    return [p for p in files if p == ref.path_ or p.exists()]


def _walk(folder: Path):
    """Everything under ``folder`` without following links (a linked folder inside a dropped
    series is not walked into: it could be the whole file system)."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            yield Path(root) / name
