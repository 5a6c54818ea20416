"""Put simulated scans beside the real ones and measure both the same way.

    python benchmarks/sim_vs_real.py [--real ../shared/real_scans/images] [--out docs/img]

Writes ``sim_vs_real.png`` (real pseudo-colour and gray scans in the top rows, simulated
ones below) and ``sim_vs_real.json`` (per-image numbers). The real scans are research-use
images: they are read at build time and shown in the picture, never copied into the repo.

Measured per image, on its 8-bit gray (or colour converted to gray) view:
  bright      share of pixels above 225 (background and thin objects)
  background  median gray level of those pixels
  noise       std of the fine detail (image minus a 2-px Gaussian blur) inside the
              background, away from edges: sensor noise plus export artefacts
  size        height x width in pixels
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "real_scans" / "images"


def measure(gray: np.ndarray) -> dict:
    bright = gray > 225
    detail = gray.astype(np.float32) - cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 2)
    core = cv2.erode(bright.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return {"size_hw": list(gray.shape[:2]), "bright": round(float(bright.mean()), 3),
            "background": float(np.median(gray[bright])) if bright.any() else None,
            "noise": round(float(detail[core].std()), 2) if core.any() else None}


def _gray(rgb_or_gray: np.ndarray) -> np.ndarray:
    if rgb_or_gray.ndim == 2:
        return rgb_or_gray
    return cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2GRAY)


def real_scans(folder: Path) -> list[tuple[str, np.ndarray]]:
    scans = []
    for path in sorted(folder.glob("*.png")):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            continue
        if img.ndim == 3:
            img = img[..., ::-1]  # BGR -> RGB
            if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0],
                                                                            img[..., 2]):
                img = img[..., 0]  # gray stored as RGB
        scans.append((path.stem, img))
    return scans


def simulated(count: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from training.sim.config import SynthConfig
    from training.sim.generate import generate

    out = []
    for i in range(count):
        result = generate(SynthConfig(), seed, i, f"sim_{i:02d}")
        out.append((result.name, result.color, result.gray))
    return out


def _tile(img: np.ndarray, size: int = 300) -> np.ndarray:
    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    scale = size / max(rgb.shape[:2])
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)),
                             max(1, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), 255, np.uint8)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def _summary(rows: list[dict]) -> dict:
    def med(key):
        values = [r[key] for r in rows if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    heights = [r["size_hw"][0] for r in rows]
    widths = [r["size_hw"][1] for r in rows]
    return {"images": len(rows), "bright_median": med("bright"),
            "background_median": med("background"), "noise_median": med("noise"),
            "noise_range": [min(r["noise"] for r in rows if r["noise"] is not None),
                            max(r["noise"] for r in rows if r["noise"] is not None)],
            "height_range": [min(heights), max(heights)], "width_range": [min(widths),
                                                                         max(widths)]}


def picture(real, sims, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real_colour = [img for name, img in real if img.ndim == 3][:5]
    real_gray = [img for name, img in real if img.ndim == 2][:2]
    rows = [("real pseudo-colour (SIXray, PIDray)", real_colour),
            ("simulated pseudo-colour (concealscan synth)", [c for _, c, _ in sims[:5]]),
            ("real gray (GDXray) | simulated gray",
             real_gray + [g for _, _, g in sims[:3]])]
    fig, axes = plt.subplots(3, 5, figsize=(15, 10.2))
    for r, (title, images) in enumerate(rows):
        for c in range(5):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(_tile(images[c]))
        axes[r][0].set_title(title, loc="left", fontsize=12)
    real_s, sim_s = summary["real_colour"], summary["simulated_colour"]
    fig.suptitle(
        "Real scans (research-use images, not in the repository) vs simulated scans.\n"
        f"Background > 225: real {real_s['bright_median']:.0%} / sim "
        f"{sim_s['bright_median']:.0%} of pixels; background level real "
        f"{real_s['background_median']:.0f} / sim {sim_s['background_median']:.0f}; "
        f"background noise real {real_s['noise_median']} / sim {sim_s['noise_median']} grey "
        "levels", fontsize=10.5)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--count", type=int, default=24, help="simulated scans to measure")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if not args.real.is_dir():
        raise SystemExit(f"real scans not found in {args.real}")
    real = real_scans(args.real)
    sims = simulated(args.count, args.seed)
    per_image = {name: {"kind": "colour" if img.ndim == 3 else "gray", **measure(_gray(img))}
                 for name, img in real}
    for name, colour, gray in sims:
        per_image[f"{name}_color"] = {"kind": "sim colour", **measure(_gray(colour))}
        per_image[f"{name}_gray"] = {"kind": "sim gray", **measure(gray)}
    groups = {"real_colour": "colour", "real_gray": "gray", "simulated_colour": "sim colour",
              "simulated_gray": "sim gray"}
    summary = {k: _summary([v for v in per_image.values() if v["kind"] == kind])
               for k, kind in groups.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    picture(real, sims, summary, args.out / "sim_vs_real.png")
    (args.out / "sim_vs_real.json").write_text(
        json.dumps({"summary": summary, "images": per_image}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
