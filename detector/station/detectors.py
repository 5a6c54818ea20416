"""The real detector as the station's `Analyzer`: read, detect, results line.

A thin adapter over `detector.results` (model choice, the line), so the service and the watch
folder write exactly what ``concealscan detect`` writes. A 2-D scan's overlay is drawn later,
by whoever shows it (`detector.station.views`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from detector import registry
from detector.errors import ScanError, UsageError
from detector.readers import DEFAULT_MAX_PIXELS, ScanRef, read_scan
from detector.station.analysis import Analysis
from detector.station.station import DetectorHandle, check_same_kinds
from detector.volume_inputs import VolumeRef

log = logging.getLogger("concealscan.watch")


def resolve_models(models: Sequence[Path] | None) -> tuple[list[Path] | None, bool]:
    """Model files for `ModelChooser` (None: the bundled ones) and whether any comes from a
    registry, i.e. whether re-resolving later can give a newly promoted model."""
    if not models:
        return None, False
    paths, from_registry = [], False
    for m in models:
        if registry.is_registry(m):
            paths.append(registry.promoted_model(m))
            from_registry = True
        elif Path(m).is_dir():
            raise UsageError(f"--model {m}: a folder but not a model registry (no versions/)")
        else:
            paths.append(Path(m))
    return paths, from_registry


def make_handle(model_paths: list[Path] | None, threads: int = 1,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> DetectorHandle:
    """Load the models (sha256-checked) and wrap them as one `DetectorHandle`."""
    from detector.results import ModelChooser

    chooser = ModelChooser([str(p) for p in model_paths] if model_paths else None,
                           threads=threads)
    models = [dict(det.identity, kind=kind) for kind, det in sorted(chooser.detectors.items())]
    summary = " ".join(f"{m['kind']}:{m['name']}-{m['version']}" for m in models)
    return DetectorHandle(analyze=_analyzer(chooser, max_pixels),
                          model={"version": summary, "models": models})


def detector_loader(models: Sequence[Path] | None,
                    threads: int = 1) -> tuple[Callable[[], DetectorHandle], bool]:
    """A callable that (re)loads the detector, and whether reloading can change the model."""
    _, switchable = resolve_models(models)

    def load() -> DetectorHandle:
        paths, _ = resolve_models(models)
        return make_handle(paths, threads)

    return load, switchable


class FollowPromoted:
    """The watch folder's analyzer: before each scan it looks at the registries it was given
    (one small read of current.json each) and switches to a newly promoted model, logging
    the switch. ``watch`` has no reload endpoint, and kept the old model until a restart.

    A promoted model that does not load (altered, no manifest) or is for other kinds of scans
    (`check_same_kinds`) is refused once, logged, and the old model stays, as
    ``POST /api/model/reload`` answers 409 in ``serve``."""

    def __init__(self, models: Sequence[Path] | None, threads: int = 1,
                 on_switch: Callable[[DetectorHandle], None] = lambda handle: None) -> None:
        self._models, self._threads, self.on_switch = models, threads, on_switch
        self._paths, self.switchable = resolve_models(models)
        self.handle = make_handle(self._paths, threads)
        self._refused: tuple | None = None  # (paths, their files' state, when) last refused
        self._said: str | None = None  # the last refusal logged

    def __call__(self, ref: ScanRef | VolumeRef) -> Analysis:
        if self.switchable:
            self._follow()
        return self.handle.analyze(ref)

    def _follow(self) -> None:
        try:
            paths, _ = resolve_models(self._models)
        except UsageError as exc:  # current.json being replaced, or damaged: keep the model
            log.error("model registry unreadable, still using %s: %s",
                      self.handle.model.get("version"), exc)
            return
        if paths == self._paths:
            return
        files = _files_state(paths)
        if self._refused is not None and self._refused[:2] == (paths, files) \
                and time.monotonic() - self._refused[2] < RETRY_REFUSED_S:
            return  # nothing changed since it was refused: not reloaded at every scan
        try:
            handle = make_handle(paths, self._threads)
            check_same_kinds(self.handle, handle)
        except (UsageError, ValueError, OSError) as exc:
            if str(exc) != self._said:  # once per distinct failure, not at each retry
                log.error("promoted model not loaded, still using %s: %s",
                          self.handle.model.get("version"), exc)
                self._said = str(exc)
            self._refused = (paths, files, time.monotonic())
            return
        log.info("switched to the promoted model %s (was %s)", handle.model.get("version"),
                 self.handle.model.get("version"))
        self._paths, self.handle, self._refused, self._said = paths, handle, None, None
        self.on_switch(handle)


#: A refused promotion is tried again when its files change (fixed, chmod-ed, replaced) and
#: at least this often: a cause outside them (a folder's permissions) may be fixed too.
RETRY_REFUSED_S = 300.0


def _files_state(paths: Sequence[Path]) -> tuple:
    """Size, mtime and ctime (chmod, chown) of the models and their manifests."""
    from detector.model import manifest_path

    state = []
    for path in paths:
        for p in (Path(path), manifest_path(path)):
            try:
                st = p.stat()
                state.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            except OSError as exc:
                state.append(exc.errno)
    return tuple(state)


def _analyzer(chooser, max_pixels: int):
    from detector.results import error_line, ok_line

    def analyze(ref: ScanRef | VolumeRef) -> Analysis:
        t0 = time.perf_counter()
        if isinstance(ref, VolumeRef):  # a volume the watch folder took in
            return _analyze_volume(chooser, ref)
        volume_files = {Path(f).stem: Path(f) for f in ref.files if Path(f).suffix == ".npy"}
        if volume_files:  # the store names them volume.npy and, dual-energy, volume_low.npy
            return _analyze_volume(chooser, VolumeRef(ref.id, volume_files["volume"],
                                                      volume_files.get("volume_low")))
        scan = None
        try:
            scan = read_scan(ref, max_pixels=max_pixels)
            det = chooser.for_scan(scan).detect(scan)
        except (ScanError, ValueError) as exc:  # unreadable scan, no model, invalid output
            reason = exc.reason if isinstance(exc, ScanError) else f"detection failed: {exc}"
            ms = (time.perf_counter() - t0) * 1e3
            return Analysis(line=error_line(ref, reason, scan, time_ms=ms), scan=scan)
        return Analysis(line=ok_line(ref, det), scan=scan, detection=det)

    return analyze


def _analyze_volume(chooser, ref) -> Analysis:
    """A CT volume through ``detect``'s own steps (`detector.ct_detect.assess_volume`)."""
    from detector.ct_detect import assess_volume
    from detector.ct_inference import MIN_SCORE
    from detector.ct_overlay import render_volume_overlay
    from detector.outputs import encode_png

    overlay: list[bytes] = []

    def render(volume, det) -> None:
        overlay.append(encode_png(render_volume_overlay(volume, det)))  # BGR, as cv2 writes

    line, volume, det = assess_volume(ref, chooser, MIN_SCORE, render=render)
    if det is None:  # a volume that was read still has slices to page for the manual check
        return Analysis(line=line, volume=volume)
    return Analysis(line=line, volume=volume, overlay_png=overlay[0])
