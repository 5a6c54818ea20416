"""The station's HTTP service (FastAPI): upload, queue, scan views, decisions, the web viewer.

Imported only by ``concealscan serve`` and the tests: FastAPI is the ``serve`` extra.
Every ``/api`` route needs ``Authorization: Bearer TOKEN``; the viewer's three static files
carry no data and are public so that the browser can load the login form.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at
# runtime, and the dependency aliases defined inside `create_app` must resolve then.
import errno
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from detector.ct_overlay import WINDOW_HU as CT_WINDOW_HU
from detector.errors import ScanError, UsageError
from detector.station import analysis as an
from detector.station.auth import AuthError, Operator, authenticate
from detector.station.db import DatabaseError, NotFoundError, ScanRow
from detector.station.limits import (
    DEFAULT_MAX_UPLOAD_BYTES,
    BodyTooLarge,
    auth_before_body,
    limit_body,
    security_headers,
)
from detector.station.station import BadUploadError, DetectorHandle, Station
from detector.station.storage import MIN_FREE_BYTES
from detector.station.store import VIEW_FILES, NotAnImageError, Upload, check_scan_id

log = logging.getLogger("concealscan.station")

#: The parts an upload may carry (`detector.station.store.Upload` roles).
UPLOAD_PARTS = ("file", "high", "low", "volume", "sidecar", "volume_low", "sidecar_low")
_WEB_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/style.css": ("style.css", "text/css; charset=utf-8")}


class DecisionIn(BaseModel):
    """An operator's decision on one scan. Boxes are in scan pixels, ``[x1, y1, x2, y2]``;
    on a CT scan in voxels, ``[x1, y1, z1, x2, y2, z2]`` (end-exclusive, as ``box3d``)."""

    decision: Literal["confirm", "clear", "missed"]
    boxes: list[Annotated[list[float], Field(min_length=4, max_length=6)]] = Field(
        default_factory=list, max_length=100,
        description="confirm: the alarm boxes that are right (empty: all of them); "
                    "missed: the items the model did not box (at least one); clear: none. "
                    "2-D scans: [x1, y1, x2, y2] in pixels; CT scans: [x1, y1, z1, x2, y2, z2] "
                    "in voxels, z the slice index")
    note: str = Field("", max_length=2000)

    @field_validator("boxes")
    @classmethod
    def _boxes_xyxy(cls, boxes: list[list[float]]) -> list[list[float]]:
        for box in boxes:
            if len(box) not in (4, 6):
                raise ValueError(f"box: expected [x1, y1, x2, y2] or, on a CT scan, "
                                 f"[x1, y1, z1, x2, y2, z2]; got {len(box)} numbers")
            half = len(box) // 2
            if not (all(lo < hi for lo, hi in zip(box[:half], box[half:], strict=True))
                    and min(box) >= 0 and max(box) < 1e6):
                raise ValueError(f"box: expected every start >= 0 and below its end "
                                 f"(x1 < x2, y1 < y2{', z1 < z2' if half == 3 else ''}), "
                                 f"got {box}")
        return boxes


def _check_boxes_fit(row: ScanRow, boxes: list[list[float]]) -> None:
    """422 unless each box has the scan's form (CT: 3-D) and lies in the scan (where its
    size is known: an unreadable scan has none)."""
    ct, want = row.kind == "ct", row.box_numbers
    form = ("a CT volume: a box is [x1, y1, z1, x2, y2, z2] in voxels" if ct
            else "2-D: a box is [x1, y1, x2, y2] in pixels")
    # the far corner's limits, in the box's order (x, y[, z]), and how to say them
    size = row.result.get("size_dhw" if ct else "size_hw")
    limits = (size[::-1] if size else None)
    for box in boxes:
        if len(box) != want:
            raise HTTPException(422, f"scan {row.id} is {form}, got {len(box)} numbers")
        if limits and any(hi > lim for hi, lim in zip(box[want // 2:], limits, strict=True)):
            raise HTTPException(422, f"box {box} reaches outside the scan "
                                     f"({' x '.join(str(v) for v in limits)} "
                                     f"{'voxels, x y z' if ct else 'pixels, x y'})")


def _summary(row: ScanRow) -> dict:
    return {"id": row.id, "received_at": row.received_at, "kind": row.kind,
            "status": row.status, "alarm": row.alarm, "error": row.error,
            "review": row.review, "model_version": row.model_version,
            "boxes": len(an.line_boxes(row.result)) if row.status == "ok" else None}


def create_app(station: Station, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               load_detector: Callable[[], DetectorHandle] | None = None) -> FastAPI:
    """The service over ``station``; ``load_detector`` (if given) re-reads the promoted model."""
    # No /docs or /redoc: their pages load scripts from a CDN, which the station's content
    # security policy (and an air-gapped customs network) refuses; the schema is /openapi.json.
    app = FastAPI(title="concealscan station", version="1", docs_url=None, redoc_url=None,
                  description="Upload scans, review the alarm queue, record operator decisions.")
    bearer = HTTPBearer(auto_error=False, description="the token from 'concealscan users add'")
    web_dir = Path(__file__).resolve().parents[1] / "web"
    web = {path: ((web_dir / name).read_bytes(), media)
           for path, (name, media) in _WEB_FILES.items()}

    def operator(creds: Annotated[HTTPAuthorizationCredentials | None,
                                  Depends(bearer)]) -> Operator:
        header = None if creds is None else f"{creds.scheme} {creds.credentials}"
        try:
            return authenticate(station.db, header)
        except AuthError as exc:
            raise HTTPException(401, "a valid 'Authorization: Bearer TOKEN' is required",
                                headers={"WWW-Authenticate": "Bearer"}) from exc

    Op = Annotated[Operator, Depends(operator)]

    def token_ok(header: str | None) -> bool:
        try:
            authenticate(station.db, header)
        except AuthError:
            return False
        return True

    app.add_middleware(limit_body, max_bytes=max_upload_bytes)
    app.add_middleware(auth_before_body, check=token_ok)  # before any body byte is read
    app.add_middleware(security_headers)  # outermost: a 413 from limit_body gets them too

    async def one_part_each(request: Request) -> None:
        """422 for a part named twice or a part of no known name: FastAPI keeps only the last
        of a repeated name, so two images under ``file`` would have stored one, unseen."""
        names = [name for name, _ in (await request.form()).multi_items()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        unknown = sorted(set(names) - set(UPLOAD_PARTS))
        if repeated or unknown:
            raise HTTPException(422, f"upload parts: each of {list(UPLOAD_PARTS)} at most once; "
                                     f"got {'repeated ' + str(repeated) if repeated else ''}"
                                     f"{' and ' if repeated and unknown else ''}"
                                     f"{'unknown ' + str(unknown) if unknown else ''}")

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and a NaN or 1e400 in a decision made that
        # echo unencodable: a 500 instead of 422. Say where and why, without the input.
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(OSError)
    async def storage(_: Request, exc: OSError) -> JSONResponse:
        # A full disk or a read-only data folder: say so (507), never a bare 500. Nothing was
        # acknowledged; a scan folder committed before the failure is finished at next start.
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        log.error("storage error: %s", exc)
        return JSONResponse({"detail": f"the station cannot store data: {exc.strerror or exc}"
                             if full else "internal storage error"},
                            status_code=507 if full else 500)

    @app.exception_handler(sqlite3.OperationalError)
    async def database_full(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        log.error("database error: %s", exc)
        # SQLite says "database or disk is full", "attempt to write a readonly database", or,
        # when the WAL cannot grow on a full disk, "disk I/O error" (measured on tmpfs)
        full = any(w in str(exc) for w in ("full", "readonly", "disk I/O error"))
        return JSONResponse({"detail": f"the station database cannot be written: {exc}"
                             if full else "internal database error"},
                            status_code=507 if full else 500)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.get("/api/health", summary="service state, model in use, who is asking",
             description="503 with status 'error' and the problems when scans cannot be "
                         "stored (a data folder, staging folder or database this process cannot "
                         "write, or less free space than 100 MB or the upload limit, the larger).")
    def health(op: Op) -> dict:
        problems = station.storage_problems(max(MIN_FREE_BYTES, max_upload_bytes))
        if problems:  # uploads would be refused: a monitor must see it before a client does
            return JSONResponse({"status": "error", "problems": problems, "operator": op.name,
                                 "model": station.model}, status_code=503)
        return {"status": "ok", "operator": op.name, "model": station.model}

    @app.post("/api/scans", status_code=201, summary="upload one scan and detect",
              dependencies=[Depends(one_part_each)],
              description="One part `file` (gray or colour), two parts `high` and `low` "
                          "(dual energy), `volume` and `sidecar` (CT), plus `volume_low` and "
                          "`sidecar_low` (dual-energy CT). Answers with the scan's "
                          "results.jsonl line; a scan that cannot be processed is stored with "
                          "status 'error' for manual check.")
    def upload(op: Op,
               file: Annotated[UploadFile | None, File(description="gray or colour scan")] = None,
               high: Annotated[UploadFile | None, File(description="dual: high energy")] = None,
               low: Annotated[UploadFile | None, File(description="dual: low energy")] = None,
               volume: Annotated[UploadFile | None,
                                 File(description="CT: HU volume (.npy)")] = None,
               sidecar: Annotated[UploadFile | None,
                                  File(description="CT: the volume's JSON sidecar")] = None,
               volume_low: Annotated[UploadFile | None,
                                     File(description="dual-energy CT: the low-energy HU "
                                                      "volume (.npy)")] = None,
               sidecar_low: Annotated[UploadFile | None,
                                      File(description="dual-energy CT: its JSON "
                                                       "sidecar")] = None,
               ) -> dict:
        given = (("file", file), ("high", high), ("low", low), ("volume", volume),
                 ("sidecar", sidecar), ("volume_low", volume_low), ("sidecar_low", sidecar_low))
        parts = [(role, up) for role, up in given if up is not None]
        uploads = [Upload(role, _read_limited(up, max_upload_bytes)) for role, up in parts]
        try:
            row = station.receive(uploads)
        except NotAnImageError as exc:
            raise HTTPException(415, str(exc)) from exc
        except BadUploadError as exc:
            raise HTTPException(422, str(exc)) from exc
        return row.result

    @app.get("/api/scans", summary="the queue, newest first")
    def queue(op: Op, alarm: bool | None = None,
              review: Literal["unreviewed", "reviewed", "confirm", "clear", "missed"]
              | None = None,
              status: Literal["ok", "error"] | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0) -> dict:
        scans = station.db.queue_summaries(alarm=alarm, review=review, status=status,
                                           limit=limit, offset=offset)
        # Plain JSON types already: skip FastAPI's generic encoder (a fifth of this route).
        return JSONResponse({"scans": scans, "model": station.model})

    @app.get("/api/scans/{scan_id}", summary="one scan: results line and decisions")
    def scan(op: Op, scan_id: str) -> dict:
        row = station.db.get_scan(_scan_id(scan_id))
        slices = station.store.slice_count(row.id)
        return {**_summary(row), "result": row.result, "views": station.view_names(row),
                "slices": slices,
                # a CT slice's grey levels 0..255 span these HU (the viewer shows its window
                # in HU and offers presets)
                "display_hu": list(CT_WINDOW_HU) if slices else None,
                "decisions": [asdict(d) for d in station.db.decisions(row.id)]}

    def view(scan_id: str, name: str) -> Response:
        row = station.db.get_scan(_scan_id(scan_id))
        try:
            png = station.view_png(row, name)
        except ScanError as exc:  # its stored files were readable at ingest, not any more
            log.error("scan %s: cannot draw %s: %s", row.id, name, exc)
            raise HTTPException(500, f"scan {row.id}: cannot draw {name}: {exc.reason}") from exc
        if png is None:
            raise HTTPException(404, f"scan {row.id} has no {name} (status {row.status}: "
                                     f"{row.error or 'not rendered'})")
        return Response(png, media_type="image/png")

    for name in VIEW_FILES:
        def route(op: Op, scan_id: str, _name: str = name) -> Response:
            return view(scan_id, _name)
        app.get(f"/api/scans/{{scan_id}}/{name}", response_class=Response,
                summary=f"the scan's {name}")(route)

    @app.get("/api/scans/{scan_id}/slices/{z}", response_class=Response,
             summary="slice z of a CT scan (PNG, display window -1000..2000 HU)")
    def slice_view(op: Op, scan_id: str, z: Annotated[int, PathParam(ge=0, le=9999)]) -> Response:
        row = station.db.get_scan(_scan_id(scan_id))
        path = station.store.slice_path(row.id, z)
        if not path.exists():
            raise HTTPException(404, f"scan {row.id} has no slice {z} "
                                     f"({station.store.slice_count(row.id)} slices)")
        return Response(path.read_bytes(), media_type="image/png")

    @app.post("/api/scans/{scan_id}/decision", status_code=201,
              summary="record a decision (appended, never overwritten)")
    def decide(op: Op, scan_id: str, body: DecisionIn) -> dict:
        row = station.db.get_scan(_scan_id(scan_id))
        if body.decision == "missed" and not body.boxes:
            raise HTTPException(422, "'missed' needs at least one box around the missed item")
        if body.decision == "clear" and body.boxes:
            raise HTTPException(422, f"'clear' takes no boxes, got {len(body.boxes)}")
        if body.decision == "confirm" and not body.boxes and not row.alarm:
            raise HTTPException(422, "nothing to confirm: the scan did not alarm (name the "
                                     "candidate boxes that are right, or mark a missed item)")
        _check_boxes_fit(row, body.boxes)
        decision_id = station.db.add_decision(row.id, op.id, body.decision, body.boxes,
                                              body.note)
        return {"id": decision_id, "scan_id": row.id, "operator": op.name,
                "decision": body.decision, "model_version": row.model_version}

    @app.post("/api/model/reload", summary="switch to the currently promoted model")
    def reload(op: Op) -> dict:
        if load_detector is None:
            raise HTTPException(409, "this service was started with a fixed model file; "
                                     "start it with --model REGISTRY to switch models")
        try:
            station.switch_detector(load_detector())
        except (UsageError, ValueError, OSError, DatabaseError) as exc:
            raise HTTPException(409, f"model not switched, still using the old one: {exc}") \
                from exc
        return {"model": station.model}

    for path, (body, media) in web.items():
        def static(_body: bytes = body, _media: str = media) -> Response:
            return Response(_body, media_type=_media)
        # HEAD too: uptime probes ask HEAD / and read 405 as "down"
        app.api_route(path, methods=["GET", "HEAD"], include_in_schema=False,
                      response_class=Response)(static)

    return app


def _scan_id(scan_id: str) -> str:
    try:
        return check_scan_id(scan_id)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc


def _read_limited(up: UploadFile, max_bytes: int) -> bytes:
    data = up.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"upload larger than {max_bytes} bytes")
    return data
