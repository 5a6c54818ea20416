"""How well a detector tells loose drug packets from loose look-alikes, and an A/B fine-tune.

    .venv/bin/python benchmarks/lookalike_ab.py --from runs/color_2.1.0/best.pt --steps 0
    .venv/bin/python benchmarks/lookalike_ab.py --from runs/color_2.1.0/best.pt --steps 1000 \\
        --arm obj3 --config configs/train/color.yaml

Scores every loose packet and every loose shop-good look-alike of the test set (COCO image field
``benign_packet``) by the highest heat in the central half of its box, and prints the ROC AUC
(packet vs look-alike): 0.5 is no better than chance; benchmarks/sim_separability.py gives the
figure hand-made measurements reach on the same objects. With ``--steps N`` it first fine-tunes
the checkpoint for N steps (batch 16, AdamW at a constant ``--lr``, one thread, seeded) with one
of the arms: ``base`` (the recipe's loss and crops), ``crops`` (``augment.decoy_crops``: object
crops may centre on look-alikes), ``objW`` (crops plus the object-level term,
``loss.decoy_weight: W``) or ``hnW`` (the object-level term at weight W with the scene's other
benign solids as negatives too, ``augment.hard_negatives``; crops as in ``base``). ``--val``
adds validation AP50 and the operating point. Scoring reads the test set's files of the model's
kind (colour, dual pairs or gray); the fine-tune is for colour models only.
The ``hnW`` arms need the COCO field ``benign_object`` (``concealscan synth`` since 2026-11-29).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_separability import loose_objects  # noqa: E402 (beside this script)

from detector.preprocess import image_to_input, resize  # noqa: E402
from detector.readers import ScanRef, read_scan  # noqa: E402
from training import checkpoint  # noqa: E402


def fine_tune(model, config: Path, arm: str, steps: int, lr: float) -> dict:
    from training.config import load_config
    from training.data import collate
    from training.engine import train_one_epoch
    from training.fit import Dist, build_data, input_spec

    cfg = load_config(config)
    cfg.augment.decoy_crops = arm == "crops" or arm.startswith("obj")
    cfg.augment.hard_negatives = arm.startswith("hn")
    weight = arm[3:] if arm.startswith("obj") else arm[2:] if arm.startswith("hn") else ""
    cfg.loss.decoy_weight = float(weight) if weight else 0.0
    train_set, _, _ = build_data(cfg, input_spec(cfg), Dist())
    draws = torch.randint(len(train_set), (steps * 16,),
                          generator=torch.Generator().manual_seed(1)).tolist()
    loader = torch.utils.data.DataLoader(train_set, batch_size=16, sampler=draws,
                                         collate_fn=collate)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.optim.weight_decay)
    constant = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return train_one_epoch(model, loader, opt, constant, torch.device("cpu"), 0, cfg.loss,
                           progress=True)


def lookalike_auc(model, spec, test: Path, negatives: str = "look-alikes",
                  packets: str = "loose") -> dict:
    from sklearn.metrics import roc_auc_score

    coco = json.loads((test / "annotations.json").read_text())
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    scores, labels = [], []
    model.eval()
    cell = model.cfg.stride / spec.scale  # scan pixels per heat cell
    for entry in coco["images"]:
        objects = loose_objects(entry, by_image.get(entry["id"], []), negatives, packets)
        if not objects:
            continue
        files = entry["files"][spec.kind]
        files = tuple(test / f for f in ([files] if isinstance(files, str) else files))
        scan = read_scan(ScanRef(id=entry["scan_id"], files=files))
        x = image_to_input(resize(scan.image, spec.scale), spec, scan.bit_depth)
        with torch.no_grad():
            heat = torch.sigmoid(model(torch.from_numpy(x)[None])[0])[0].amax(0).numpy()
        for obj, label in objects:
            x0, y0, w, h = obj["bbox"]
            c1, r1, c2, r2 = (int(v / cell) for v in (x0 + w / 4, y0 + h / 4,
                                                      x0 + 3 * w / 4, y0 + 3 * h / 4))
            region = heat[max(r1, 0):max(r2 + 1, 1), max(c1, 0):max(c2 + 1, 1)]
            if region.size:
                scores.append(float(region.max()))
                labels.append(label)
    s, y = np.array(scores), np.array(labels)
    return {"objects": len(y), "packets": int(y.sum()), "negatives": negatives,
            "auc_packet_vs_lookalike": round(float(roc_auc_score(y, s)), 3),
            "median_heat_packets": round(float(np.median(s[y == 1])), 3),
            "median_heat_lookalikes": round(float(np.median(s[y == 0])), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="ckpt", type=Path, required=True,
                        help="checkpoint (.pt) to score (any 2-D kind), or a colour one to "
                             "fine-tune first")
    parser.add_argument("--test", type=Path, default=REPO / "data/sim/test",
                        help="synth folder to score on (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=REPO / "configs/train/color.yaml",
                        help="recipe whose data and augmentation the fine-tune uses")
    parser.add_argument("--arm", default="base", help="base, crops, objW or hnW (default: base)")
    parser.add_argument("--steps", type=int, default=0, help="fine-tune steps (default: 0)")
    parser.add_argument("--lr", type=float, default=1e-3, help="constant rate (default: 1e-3)")
    parser.add_argument("--val", type=Path, default=None,
                        help="also report validation AP50 and Pd at Pfa 0.05 on this synth "
                             "folder (e.g. data/sim/val)")
    parser.add_argument("--negatives", choices=("look-alikes", "benign-objects"),
                        default="look-alikes",
                        help="score packets against the loose look-alikes (default) or the "
                             "scene's other benign solids (benign_object; the AUC key keeps "
                             "its name)")
    parser.add_argument("--packets", choices=("loose", "all"), default="loose",
                        help="which packets (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.arm not in ("base", "crops") and not args.arm.startswith(("obj", "hn")):
        parser.error(f"--arm: expected base, crops, objW or hnW, got {args.arm!r}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, spec = checkpoint.build_model(checkpoint.load(args.ckpt))
    if spec.kind != "color" and args.steps:
        parser.error(f"--from {args.ckpt}: a {spec.kind!r} model; the fine-tune is for colour "
                     f"ones (scoring alone, --steps 0, takes any 2-D model)")
    if spec.kind == "ct":
        parser.error(f"--from {args.ckpt}: a CT model; this measures 2-D ones")
    report = {"checkpoint": str(args.ckpt), "arm": args.arm, "steps": args.steps}
    if args.steps:
        t0 = time.perf_counter()
        report["train_losses"] = fine_tune(model, args.config, args.arm, args.steps, args.lr)
        report["train_seconds"] = round(time.perf_counter() - t0)
    report.update(lookalike_auc(model, spec, args.test, args.negatives, args.packets))
    if args.val is not None:
        from training.config import load_config
        from training.data import CocoScans
        from training.fit import validate

        cfg = load_config(args.config)
        val = CocoScans(args.val / "annotations.json", spec.kind, cfg.classes)
        metrics = validate(model, val, spec, cfg, torch.device("cpu"))
        report.update({f"val_{k}": round(float(v), 3) for k, v in metrics.items()})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
