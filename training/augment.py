"""Augmentations chosen for X-ray scans, built on albumentations.

Attenuation inputs (dual, gray) are augmented in attenuation space with transforms that keep
the physics: detector gain (a shift of -ln T per energy), thickness (attenuation x k at both
energies, which keeps the dual-energy ratio), quantum noise in transmission, blur. No hue or
colour jitter there. Pseudo-colour inputs may vary palette (hue, saturation), brightness and
JPEG quality, as real exports do. Geometry for all: scale, crop, flips, 90-degree rotations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# albumentations asks PyPI for a newer version on import unless told not to: no network
# calls from training machines (offline labs wait for the timeout, and it leaks who runs us)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class AugmentConfig:
    crop_size: int = 320
    scale_range: tuple[float, float] = (0.8, 1.25)
    object_crop_prob: float = 0.7  # crops that keep at least one object when there is one
    decoy_crops: bool = False  # those crops may centre on a benign look-alike too (sim data)
    # Benign solids of the scene (COCO ``benign_object``) and look-alikes become negatives
    # of the object-level term (`LossConfig.decoy_weight`); crops never centre on them.
    hard_negatives: bool = False
    min_visibility: float = 0.4  # a box cut to less than this fraction is dropped
    gain_sigma: float = 0.08  # std of ln(gain) per energy
    thickness_range: tuple[float, float] = (0.8, 1.25)
    noise_prob: float = 0.5
    noise_photons: tuple[float, float] = (2000.0, 20000.0)  # photons per air pixel
    blur_prob: float = 0.2
    palette_prob: float = 0.5  # colour only
    jpeg_prob: float = 0.3  # colour only


class DetectorGain(A.ImageOnlyTransform):
    """Counts x gain, i.e. attenuation - ln(gain), independently per energy channel."""

    def __init__(self, sigma: float = 0.08, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.sigma = sigma

    def get_params_dependent_on_data(self, params, data):
        channels = data["image"].shape[2]
        return {"shift": self.random_generator.normal(0.0, self.sigma, channels)}

    def apply(self, img, shift=None, **params):
        return np.clip(img - shift.astype(np.float32), 0.0, None)


class Thickness(A.ImageOnlyTransform):
    """Attenuation x k at every energy: thicker or thinner material of the same kind."""

    def __init__(self, k_range: tuple[float, float] = (0.8, 1.25), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.k_range = k_range

    def get_params(self):
        return {"k": float(self.random_generator.uniform(*self.k_range))}

    def apply(self, img, k=1.0, **params):
        return img * np.float32(k)


class QuantumNoise(A.ImageOnlyTransform):
    """Poisson-like noise in transmission: std of T is sqrt(T / photons)."""

    def __init__(self, photons: tuple[float, float] = (2000.0, 20000.0), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.photons = photons

    def get_params_dependent_on_data(self, params, data):
        lo, hi = np.log(self.photons)
        n = float(np.exp(self.random_generator.uniform(lo, hi)))
        noise = self.random_generator.standard_normal(data["image"].shape).astype(np.float32)
        return {"photons": n, "noise": noise}

    def apply(self, img, photons=1e4, noise=None, **params):
        t = np.exp(-img)
        t = np.clip(t + noise * np.sqrt(t / np.float32(photons)), 1e-5, 1.0)
        return (-np.log(t)).astype(np.float32)


class ObjectCrop(A.AtLeastOneBBoxRandomCrop):
    """`A.AtLeastOneBBoxRandomCrop` that centres only on boxes labelled ``>= min_label``
    (targets are >= 0, look-alikes -1, other negatives -2); a plain random crop if none."""

    def __init__(self, height: int, width: int, min_label: int = -1, p: float = 1.0) -> None:
        super().__init__(height, width, p=p)
        self.min_label = min_label

    def get_params_dependent_on_data(self, params, data):
        bboxes = data.get("bboxes", [])
        if len(bboxes):  # albumentations keeps numeric labels as the fifth column
            data = {**data, "bboxes": bboxes[bboxes[:, 4] >= self.min_label]}
        return super().get_params_dependent_on_data(params, data)


def _geometry(cfg: AugmentConfig, fill: float) -> list[A.BasicTransform]:
    size = cfg.crop_size
    lo, hi = cfg.scale_range
    return [
        A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), p=1.0),
        A.PadIfNeeded(size, size, border_mode=0, fill=fill, position="random"),
        # Targets, and look-alikes when they are passed as -1 (`TrainSet` decoy_crops). OneOf
        # draws by its members' p as they are when it is built.
        A.OneOf([ObjectCrop(size, size, min_label=-1, p=cfg.object_crop_prob),
                 A.RandomCrop(size, size, p=1.0 - cfg.object_crop_prob)], p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
    ]


def build_augment(kind: str, cfg: AugmentConfig, seed: int | None = None) -> A.Compose:
    """The training pipeline for one input kind; images are HWC in `Scan` value layout."""
    if kind in ("dual", "gray"):
        fill = 0.0  # air
        photometric = [
            DetectorGain(cfg.gain_sigma, p=0.5),
            Thickness(cfg.thickness_range, p=0.5),
            QuantumNoise(cfg.noise_photons, p=cfg.noise_prob),
            A.GaussianBlur(sigma_limit=(0.3, 1.0), p=cfg.blur_prob),
        ]
    elif kind == "color":
        fill = 255.0  # white background of pseudo-colour exports
        photometric = [
            A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.25, hue=0.04,
                          p=cfg.palette_prob),
            A.GaussNoise(std_range=(0.005, 0.03), p=cfg.noise_prob),
            A.GaussianBlur(sigma_limit=(0.3, 1.0), p=cfg.blur_prob),
            A.ImageCompression(quality_range=(60, 95), p=cfg.jpeg_prob),
        ]
    else:
        raise ValueError(f"kind: expected dual, gray or color, got {kind!r}")
    geometry = _geometry(cfg, fill)
    bbox = A.BboxParams(format="pascal_voc", label_fields=["labels"],
                        min_visibility=cfg.min_visibility, clip=True, filter_invalid_bboxes=True)
    return A.Compose(geometry + photometric, bbox_params=bbox, seed=seed)


def apply_augment(pipeline: A.Compose, image_chw: np.ndarray, boxes_xyxy: np.ndarray,
                  labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``pipeline`` on a ``(C, H, W)`` image; returns the same layout and the kept boxes."""
    out = pipeline(image=np.ascontiguousarray(image_chw.transpose(1, 2, 0)),
                   bboxes=boxes_xyxy.reshape(-1, 4), labels=labels)
    img = out["image"]
    if img.ndim == 2:
        img = img[:, :, None]
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    return (np.ascontiguousarray(img.transpose(2, 0, 1)), boxes,
            np.asarray(out["labels"], np.int64).reshape(-1))
