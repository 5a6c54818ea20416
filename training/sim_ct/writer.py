"""Write a simulated CT data set: per volume ``NAME.npy`` (int16 HU) with its ``NAME.json``
voxel-size sidecar (what `detector.volume_readers.read_volume` reads), other energies as
``NAME_<kvp>kvp.npy``, the scene record, then one COCO ``annotations.json`` whose annotations
carry ``bbox3d`` ``[x1, y1, z1, x2, y2, z2]`` (voxels, end-exclusive) and a ``manifest.json``.

Volume ``i`` depends only on (config, seed, i): the output is the same for any worker count.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from detector.report import Progress
from training.sim.config import SynthConfig
from training.sim.journal import render_journaled
from training.sim.writer import (
    coco,
    finish,
    journal_identity,
    manifest,
    map_scans,
    scan_name,
)
from training.sim_ct.config import CtConfig


@dataclass(frozen=True)
class _CtJob:
    out_dir: str
    config: SynthConfig
    ct: CtConfig
    seed: int
    prefix: str


def write_volume(out_dir: Path, result) -> None:
    """The volumes (each with its sidecar) and the scene record of one `CtResult`."""
    from detector.volume_readers import write_sidecar
    from training.sim_ct.generate import volume_name

    for i, (kvp, hu) in enumerate(result.volumes.items()):
        path = out_dir / volume_name(result.name, kvp, i == 0)
        # Saved to memory first: np.save to a path reports a full disk as "N requested and M
        # written", without the errno that says why.
        buf = io.BytesIO()
        np.save(buf, hu)
        path.write_bytes(buf.getvalue())
        write_sidecar(path, [result.voxel_mm] * 3)
    (out_dir / f"{result.name}_scene.json").write_text(json.dumps(result.record) + "\n")


def _make(job: _CtJob, index: int) -> tuple[dict, list[dict]]:
    from training.sim_ct.generate import generate_ct

    result = generate_ct(job.config, job.ct, job.seed, index, scan_name(job.prefix, index))
    write_volume(Path(job.out_dir), result)
    return result.image_entry(), result.annotations


def write_ct_dataset(out_dir: str | Path, config: SynthConfig, ct: CtConfig, count: int,
                     seed: int, workers: int = 1, prefix: str = "ct_",
                     progress: bool = True, resume: bool = False) -> dict:
    """Simulate ``count`` volumes into ``out_dir``; return the COCO document written.
    ``resume`` continues an interrupted run from its journal (`training.sim.journal`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = _CtJob(str(out), config, ct, seed, prefix)
    identity = {**journal_identity("ct", config, seed, prefix), "ct_config": ct.to_json()}
    with Progress(count, "simulating CT volumes", "volume", enabled=progress) as bar:
        entries = render_journaled(
            lambda start: map_scans(partial(_make, job), count, workers, start), out, count,
            identity, resume, bar, unit="volumes")
    doc = coco(entries)
    doc["info"] = {"description": "concealscan simulated parcel CT volumes (concealscan synth "
                                  "--kinds ct); bbox3d is [x1, y1, z1, x2, y2, z2] in voxels, "
                                  "end-exclusive (x columns, y rows, z slices)"}
    made = manifest(config, seed, count, prefix)
    made.update({"kinds": "ct", "ct_config": ct.to_json()})
    finish(out, doc, made)
    return doc
