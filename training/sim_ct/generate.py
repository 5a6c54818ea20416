"""One simulated CT volume from (config, seed, index), and its exact replay from the record.

The scene is the 2-D simulator's (`training.sim.compose`: same parcels, objects, packets and
concealments), laid on a CT grid by `training.sim_ct.voxelise` and scanned by
`training.sim_ct.scanner` (polychromatic projections, Poisson noise, FBP, HU). Labels are the
3-D boxes of each packet's content voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.sim import compose
from training.sim.config import SynthConfig
from training.sim.forward import BASIS
from training.sim.parts import uniform
from training.sim.scene import Scene
from training.sim_ct.config import CtConfig
from training.sim_ct.scanner import CtScanner, mu_table, reconstruct
from training.sim_ct.voxelise import CtGrid, benign_boxes3d, box3d, label_mask, voxelise

RECORD_FORMAT = 1
RECON_CHUNK = 8  # slices reconstructed together: bounds the (views, bins, slices, E) array
_LABEL_KEYS = ("host", "material", "mass_g", "strategy", "form", "wrap", "purity", "cut",
               "group")


@dataclass
class CtResult:
    name: str
    volumes: dict[float, np.ndarray]  # kVp -> (D, H, W) int16 HU; the first kVp is the main
    voxel_mm: float
    annotations: list[dict]  # concealed packets, with bbox3d
    benign: list[dict]  # look-alike blocks (hard negatives), same fields
    record: dict
    #: The scene's other benign solids that look like a block (``bbox3d``, material,
    #: density), COCO image field ``benign_object`` as in 2-D: what CT false alarms are put
    #: down to (`training.metrics.false_alarm_causes`).
    benign_objects: list[dict] = field(default_factory=list)

    @property
    def size_dhw(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in next(iter(self.volumes.values())).shape)

    def files(self) -> dict[str, str]:
        """Kind -> file name: ``ct`` is the main volume, ``ct_<kvp>kvp`` the others."""
        out = {}
        for i, kvp in enumerate(self.volumes):
            out["ct" if i == 0 else f"ct_{kvp:g}kvp"] = volume_name(self.name, kvp, i == 0)
        return out

    def image_entry(self) -> dict:
        d, h, w = self.size_dhw
        ct = self.record["ct"]
        return {"file_name": volume_name(self.name, ct["kvp"][0], True), "width": w,
                "height": h, "depth": d, "scan_id": self.name, "kind": "ct",
                "files": self.files(), "size_dhw": [d, h, w],
                "voxel_mm": [self.voxel_mm] * 3, "kvp": list(ct["kvp"]),
                "positive": bool(self.annotations),
                "host_kinds": sorted({a["host"] for a in self.annotations}),
                "parcel": self.record["scene"]["parcel"]["kind"],
                "benign_packet": self.benign, "benign_object": self.benign_objects}


def volume_name(name: str, kvp: float, main: bool) -> str:
    return f"{name}.npy" if main else f"{name}_{kvp:g}kvp.npy"


def draw_ct_record(config: SynthConfig, ct: CtConfig, seed: int, index: int, name: str) -> dict:
    """Every random choice of volume ``index`` of data set ``seed``, as a JSON-able record."""
    root = np.random.SeedSequence(seed, spawn_key=(index,))
    scene_seq, noise_seq = root.spawn(2)
    rng = np.random.default_rng(scene_seq)
    photons = float(np.exp(uniform(rng, *np.log(ct.photons_per_ray))))
    scene = compose.compose(rng, config.scene, ct.scanner(), ct.voxel_mm, 1e6)
    settings = {"voxel_mm": ct.voxel_mm, "size": ct.size, "belt_mm": ct.belt_mm,
                "kvp": list(ct.kvp), "filter_al_mm": ct.filter_al_mm,
                "photons_per_ray": photons, "angles": ct.angles, "supersample": ct.supersample,
                "energy_step_kev": ct.energy_step_kev,
                "noise_seed": int(noise_seq.generate_state(1)[0])}
    return {"format": RECORD_FORMAT, "kind": "ct", "name": name, "seed": int(seed),
            "index": int(index), "ct": settings, "scene": scene.to_json()}


def scan_volume(basis: np.ndarray, scanner: CtScanner, rng: np.random.Generator) -> np.ndarray:
    """HU ``(D, H, W)`` float32 of basis densities ``(D, H, W, 3)``, slice chunk by chunk."""
    mu = mu_table(scanner, list(BASIS))
    out = np.empty(basis.shape[:3], np.float32)
    for z in range(0, basis.shape[0], RECON_CHUNK):
        out[z: z + RECON_CHUNK] = reconstruct(basis[z: z + RECON_CHUNK], mu, scanner, rng)
    return out


def _labels(packets: list[dict], content: dict[str, np.ndarray], hu: np.ndarray) -> list[dict]:
    out = []
    for packet in packets:
        fill = content.get(packet["group"])
        mask = None if fill is None else label_mask(fill)
        found = None if mask is None else box3d(mask)
        packet["visible"] = found is not None
        if found is None:
            continue
        box, per_slice = found
        voxels = int(mask.sum())
        out.append({"bbox3d": box, "bbox_slices": per_slice, "area": voxels, "iscrowd": 0,
                    "hu_mean": round(float(hu[mask].mean()), 1),
                    **{k: packet.get(k) for k in _LABEL_KEYS}})
    return out


def render_ct_record(record: dict) -> CtResult:
    """Volumes and labels of a record (deterministic: same record, same bytes)."""
    if record.get("format") != RECORD_FORMAT or record.get("kind") != "ct":
        raise ValueError(f"CT scene record: expected format {RECORD_FORMAT} and kind 'ct', got "
                         f"{record.get('format')!r} and {record.get('kind')!r}")
    ct = record["ct"]
    scene, grid = scene_and_grid(record)
    vox = voxelise(scene, grid)
    rng = np.random.default_rng(ct["noise_seed"])
    volumes = {}
    for kvp in ct["kvp"]:
        scanner = CtScanner(kvp=float(kvp), filter_al_mm=ct["filter_al_mm"],
                            photons_per_ray=ct["photons_per_ray"], size=ct["size"],
                            angles=ct["angles"], voxel_mm=ct["voxel_mm"],
                            energy_step_kev=ct["energy_step_kev"])
        hu = np.rint(np.clip(scan_volume(vox.basis, scanner, rng), -32768, 32767))
        volumes[float(kvp)] = hu.astype(np.int16)
    main = next(iter(volumes.values()))
    found = _labels([dict(p) for p in scene.packets], vox.content, main)
    benign = _labels([dict(p) for p in scene.decoys], vox.content, main)
    others = benign_boxes3d(scene, grid, [a["bbox3d"] for a in found])
    return CtResult(record["name"], volumes, float(ct["voxel_mm"]), found, benign, record,
                    others)


def scene_and_grid(record: dict) -> tuple[Scene, CtGrid]:
    """The scene of a CT record and the grid it is voxelised on."""
    ct = record["ct"]
    scene = Scene.from_json(record["scene"])
    depth = scene.size_hw[1]  # the composer's image width is the belt travel: the slices
    return scene, CtGrid((depth, ct["size"], ct["size"]), ct["voxel_mm"], ct["belt_mm"],
                         ct["supersample"])


def generate_ct(config: SynthConfig, ct: CtConfig, seed: int, index: int,
                name: str | None = None) -> CtResult:
    """Volume ``index`` of the data set with ``seed``: the same arguments give the same bytes."""
    return render_ct_record(draw_ct_record(config, ct, seed, index,
                                           name or f"ct_{index:06d}"))
