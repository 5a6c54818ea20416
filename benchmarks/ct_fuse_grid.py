"""Are the CT fusion's parameters (`detector.ct_fuse.FuseParams`) right for the CT model we ship?

    .venv/bin/python benchmarks/ct_fuse_grid.py --model detector/models/ct.onnx \
        --tune data/sim_ct/calib2/annotations.json \
        --check data/sim_ct/test2/annotations.json data/sim_ct/test3/annotations.json \
        --out runs/fuse_grid

Every volume goes through the model once (`detector.ct_inference.slab_candidates`, cached in
``--out`` as one .npz per set); then the slab candidates are fused again under each setting
(`fuse_candidates`, the workstation's own fusion) and scored: 3-D AP at IoU 0.25
(`training.ct_eval.ap_3d`) and Pd at Pfa 0.05, the threshold fitted on the set itself (as
`concealscan compare` does). The search is coordinate-wise around the defaults, one parameter
at a time over its grid, ``--passes`` times, on the ``--tune`` set only, maximising AP + Pd.
The best setting and the defaults are then scored on each ``--check`` set, with a paired
bootstrap interval for the differences (volumes resampled).

The defaults were last searched on an early model (3-D AP 0.17, docs/ct.md); fused scores and
3-D boxes depend on how the slab detector behaves, so the answer may move with the model.
It scores the network's fused boxes: a model's second look (CT 1.11.0's) is not applied, and
its trees were fitted on boxes of the default fusion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.ct_fuse import FuseParams  # noqa: E402
from detector.ct_inference import MIN_SCORE, SlabCandidates, fuse_candidates  # noqa: E402

GRID = {"link_iou": [0.1, 0.2, 0.3, 0.4, 0.5], "max_gap": [1, 2, 3, 4],
        "support": [1, 2, 3, 4, 5, 6, 8], "member_frac": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        "nms_iou": [0.1, 0.15, 0.25, 0.4]}
PFA = 0.05
#: What fusion reads of a volume's slab candidates (not the resampled volume a second look
#: measures: the cache stays small, and the search is over the network's fused scores).
FUSION_FIELDS = ("z", "boxes_xyxy", "scores", "scale", "size_xyz")


def cache_set(model_path: str, ann: str, out: Path, threads: int) -> Path:
    """Slab candidates and ground truth of every volume of ``ann``, in ``out``/NAME.npz."""
    from detector.ct_inference import slab_candidates
    from detector.model import OnnxModel
    from detector.postprocess import DecodeParams
    from detector.report import Progress
    from training.ct_data import CtVolumes

    name = Path(ann).parent.name
    path = out / f"{name}.npz"
    if path.is_file():
        return path
    model = OnnxModel(model_path, threads=threads)
    info = model.info
    params = DecodeParams(stride=info.stride, score_thresh=MIN_SCORE)
    volumes = CtVolumes(ann, list(info.classes), info.input_spec.ct_energies)
    rows: dict[str, np.ndarray] = {}
    with Progress(len(volumes), f"slab candidates of {name}", "volume") as bar:
        for i in range(len(volumes)):
            item = volumes[i]
            c = slab_candidates(model.predict, item.volume, info.input_spec, params)
            for name in FUSION_FIELDS:
                rows[f"{i}.{name}"] = getattr(c, name)
            rows[f"{i}.gt"] = np.asarray(item.boxes_xyzxyz, np.float32).reshape(-1, 6)
            bar.update()
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, count=np.array(len(volumes)), **rows)
    return path


def load_set(path: Path) -> list[tuple[SlabCandidates, np.ndarray]]:
    data = np.load(path)  # arrays only: allow_pickle stays off
    return [(SlabCandidates(**{n: data[f"{i}.{n}"] for n in FUSION_FIELDS}), data[f"{i}.gt"])
            for i in range(int(data["count"]))]


def records(volumes, params: FuseParams):
    from training.metrics import ScanRecord

    out = []
    for i, (cands, gt) in enumerate(volumes):
        boxes, scores = fuse_candidates(cands, MIN_SCORE, params)
        out.append(ScanRecord(str(i), (0, 0), gt, np.zeros(len(gt), np.int64), boxes, scores,
                              np.zeros(len(scores), np.int64), [{} for _ in gt]))
    return out


def tops(recs) -> tuple[np.ndarray, np.ndarray]:
    """(each volume's top fused score, 0 without any; whether it holds a packet)."""
    return (np.array([r.scores.max() if len(r.scores) else 0.0 for r in recs]),
            np.array([r.positive for r in recs]))


def score(recs) -> dict:
    from training.ct_eval import ap_3d
    from training.metrics import pd_at_pfa

    top, positive = tops(recs)
    return {"ap3d": ap_3d(recs), "pd_at_pfa": pd_at_pfa(top, positive, PFA)[0]}


def search(volumes, passes: int) -> tuple[FuseParams, list[dict]]:
    best = FuseParams()
    best_score = score(records(volumes, best))
    log = [{"params": dataclasses.asdict(best), **best_score}]
    print(f"defaults: {best_score}", flush=True)
    for _ in range(passes):
        for key, values in GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{key: value})
                if trial == best:
                    continue
                s = score(records(volumes, trial))
                log.append({"params": dataclasses.asdict(trial), **s})
                if s["ap3d"] + s["pd_at_pfa"] > best_score["ap3d"] + best_score["pd_at_pfa"]:
                    best, best_score = trial, s
                    print(f"better: {key}={value}: {s}", flush=True)
    return best, log


def check(volumes, tuned: FuseParams, resamples: int, seed: int = 0) -> dict:
    """Defaults vs ``tuned`` on one set, differences with paired bootstrap intervals."""
    from training.ct_eval import ap_3d
    from training.metrics import pd_at_pfa

    recs = {"defaults": records(volumes, FuseParams()), "tuned": records(volumes, tuned)}
    result = {k: score(v) for k, v in recs.items()}
    top = {k: tops(v)[0] for k, v in recs.items()}
    positive = tops(recs["defaults"])[1]
    rng = np.random.default_rng(seed)
    diffs = {"ap3d": [], "pd_at_pfa": []}
    for _ in range(resamples):
        d = rng.integers(0, len(positive), len(positive))
        if positive[d].all() or not positive[d].any():
            continue
        diffs["ap3d"].append(ap_3d([recs["tuned"][i] for i in d])
                             - ap_3d([recs["defaults"][i] for i in d]))
        diffs["pd_at_pfa"].append(pd_at_pfa(top["tuned"][d], positive[d], PFA)[0]
                                  - pd_at_pfa(top["defaults"][d], positive[d], PFA)[0])
    result["difference"] = {
        k: {"value": result["tuned"][k] - result["defaults"][k],
            "interval_95": [float(x) for x in np.percentile(v, [2.5, 97.5])] if v else None}
        for k, v in diffs.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a CT model (.onnx)")
    ap.add_argument("--tune", required=True, help="COCO file of the set the search runs on")
    ap.add_argument("--check", nargs="*", default=[], help="sets the result is checked on")
    ap.add_argument("--out", required=True, help="folder for the candidate caches and JSON")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tune = load_set(cache_set(args.model, args.tune, out, args.threads))
    tuned, log = search(tune, args.passes)
    result = {"model": args.model, "tune": args.tune, "tuned": dataclasses.asdict(tuned),
              "defaults": dataclasses.asdict(FuseParams()), "search": log, "checks": {}}
    print(f"tuned on {args.tune}: {dataclasses.asdict(tuned)}")
    for ann in args.check:
        volumes = load_set(cache_set(args.model, ann, out, args.threads))
        result["checks"][ann] = r = check(volumes, tuned, args.bootstrap)
        print(f"{ann}: defaults {r['defaults']}, tuned {r['tuned']}, difference "
              f"{json.dumps(r['difference'])}")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
