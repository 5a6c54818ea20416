"""Small CT volumes and DICOM/DICOS CT files written fresh for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DICOS_CT = "1.2.840.10008.5.1.4.1.1.501.1"
DICOM_CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def phantom_hu(shape=(12, 40, 48), seed=0) -> np.ndarray:
    """Air around a cardboard box holding clothes and one dense packet (HU, float32)."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0, np.float32)
    hu[2:-2, 4:-4, 4:-4] = -850.0  # box interior: clothes and air
    hu[4:8, 12:22, 14:30] = 300.0  # packet
    hu += rng.normal(0, 5, shape).astype(np.float32)
    return hu


#: The study attributes every written series carries, as a scanner's would.
STUDY_DATE, STUDY_TIME, STUDY_ID = "20261127", "091500.25", "S-42"


def new_dataset(sop: str) -> pydicom.Dataset:
    """An empty dataset of SOP class ``sop`` with a fresh instance UID and its file meta
    (explicit VR little endian), ready for pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


def _base(sop: str, series_uid: str, study_uid: str, rows: int, cols: int) -> pydicom.Dataset:
    ds = new_dataset(sop)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID = STUDY_DATE, STUDY_TIME, STUDY_ID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    return ds


def write_ct_series(folder: Path, hu: np.ndarray, voxel_mm=(2.0, 1.0, 1.5), sop=DICOS_CT,
                    slope=1.0, intercept=-1024.0, positions=True, order=None,
                    series_uid=None) -> list[Path]:
    """One single-frame file per slice, stored as uint16 ``(hu - intercept) / slope``.

    ``order`` permutes the file names so that name order is not slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    depth = hu.shape[0]
    order = list(range(depth)) if order is None else list(order)
    paths = []
    for name_index, k in enumerate(order):
        ds = _base(sop, series_uid, study_uid, *hu.shape[1:])
        ds.InstanceNumber = k + 1
        ds.PixelSpacing = [voxel_mm[1], voxel_mm[2]]
        ds.SliceThickness = voxel_mm[0]
        if positions:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0.0, 0.0, -50.0 + k * voxel_mm[0]]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        stored = np.clip(np.rint((hu[k] - intercept) / slope), 0, 65535).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        path = folder / f"slice_{name_index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_multiframe_ct(path: Path, hu: np.ndarray, voxel_mm=(2.0, 1.0, 1.5), sop=ENHANCED_CT,
                        intercept=-1024.0) -> Path:
    """One Enhanced-CT-style file: shared pixel measures and rescale, per-frame positions."""
    ds = _base(sop, generate_uid(), generate_uid(), *hu.shape[1:])
    ds.NumberOfFrames = hu.shape[0]
    shared = pydicom.Dataset()
    measures = pydicom.Dataset()
    measures.PixelSpacing = [voxel_mm[1], voxel_mm[2]]
    measures.SliceThickness = voxel_mm[0]
    orient = pydicom.Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rescale = pydicom.Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1.0, intercept, "HU"
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in reversed(range(hu.shape[0])):  # stored top-down: the reader must sort
        item, pos = pydicom.Dataset(), pydicom.Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, k * voxel_mm[0]]
        item.PlanePositionSequence = Sequence([pos])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = np.clip(np.rint(hu[::-1] - intercept), 0, 65535).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def tiny_ct_recipe(name: str, sets: Path, out_dir: Path, channels=None) -> str:
    """A one-epoch CT recipe with a tiny network on ``sets/train`` and ``sets/val``
    (``channels``: the recipe's ``data.channels``, default none)."""
    layout = f"  channels: [{', '.join(channels)}]\n" if channels else ""
    return f"""name: {name}
kind: ct
classes: [concealed_organic]
out_dir: {out_dir}
data:
  train: [{{path: {sets / 'train' / 'annotations.json'}}}]
  val: {{path: {sets / 'val' / 'annotations.json'}}}
{layout}  ct: {{voxel_mm: 8.0, negative_slabs: 0.2}}
model: {{widths: [8, 12, 16, 24, 32], blocks: [1, 1, 1, 1, 1], neck_width: 12}}
optim: {{epochs: 1, batch_size: 4, workers: 0, warmup_steps: 2, threads: 1}}
"""


def synth_small_ct_sets(root: Path, counts: dict[str, int], kvp=(140,)) -> Path:
    """``concealscan synth --kinds ct`` of small 8 mm volumes into ``root/NAME`` for each
    ``NAME: count`` (seeds 1, 2, ... in that order); ``kvp=(140, 80)`` for two energies."""
    from detector.cli import main

    (root / "small.yaml").write_text(
        "ct: {voxel_mm: 8.0, size: 48, slices: [32, 34], margin: [1, 2], angles: 48, "
        f"kvp: [{', '.join(str(k) for k in kvp)}]}}\n"
        "scene: {positive_fraction: 0.7, items: [1, 3]}\n")
    for seed, (name, count) in enumerate(counts.items(), start=1):
        assert main(["synth", "--kinds", "ct", "--out", str(root / name), "--count", str(count),
                     "--seed", str(seed), "--config", str(root / "small.yaml")]) == 0
    return root


#: Compressed transfer syntaxes `compress_dicom` writes: JPEG-LS lossless, JPEG 2000 lossless.
CODECS = {"jpegls": "1.2.840.10008.1.2.4.80", "jpeg2k": "1.2.840.10008.1.2.4.90"}


def compress_dicom(path: Path, codec: str, keep: float = 1.0, signed: bool = False) -> Path:
    """Re-encode ``path``'s frames losslessly with ``codec`` (`CODECS`), as a scanner exporting
    compressed DICOM would. ``keep`` < 1 cuts each stream and appends an end marker, as a
    damaged transfer would leave it; ``signed`` first stores the values as signed
    (PixelRepresentation 1, intercept raised by 32768: the same HU), which JPEG-LS keeps as
    their unsigned bit patterns."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    frames = pixels.reshape(-1, *pixels.shape[-2:]) if ds.SamplesPerPixel == 1 else pixels[None]
    if signed:
        frames = (frames.astype(np.int32) - 32768).astype(np.int16)
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = float(ds.RescaleIntercept) + 32768
    encode = imagecodecs.jpegls_encode if codec == "jpegls" else imagecodecs.jpeg2k_encode
    streams = []
    for frame in frames:
        data = encode(frame.view(np.uint16) if codec == "jpegls" and signed else frame)
        streams.append(data if keep >= 1 else data[: int(len(data) * keep)] + b"\xff\xd9")
    ds.PixelData = encapsulate(streams)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = CODECS[codec]
    ds.save_as(path, enforce_file_format=True)
    return path
