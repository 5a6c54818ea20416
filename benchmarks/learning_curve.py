"""How much more training compute would the bundled detectors need to reach their targets?

    .venv/bin/python benchmarks/learning_curve.py [--out FILE]

Pure arithmetic on the training history in benchmarks/learning_curve_data.py, numbers copied
from docs/models.md and docs/ct.md at commit 726d2a0 (read with `git show`, so later edits to
the docs do not move the cited lines). Checks every cited number is printed on its cited lines,
then fits y = a + b * log2(cumulative crops) per lineage and prints markdown tables: the
history, the fits, the straight-line cost in CPU-thread-hours and H200-hours, the stage-by-stage
gains and the flattening checks. See docs/learning_curve.md for what they mean.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_curve_data as D  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMIT = "726d2a0"
DOCS = {"M": "docs/models.md", "C": "docs/ct.md"}
BATCH = 16
METRICS = ("ap2", "pd2", "ap4", "pdr", "pfr", "ap100", "ap1k", "pd1k", "ap3", "pd3")
LINEAGES = {"dual": D.DUAL, "gray": D.GRAY, "colour": D.COLOUR, "ct": D.CT}
# dual's fitted line: the colour-started releases after its last recipe/input change
DUAL_LINE = tuple(f"3.{i}.0" for i in range(3, 14))


# ---------------------------------------------------------------- docs and the check
def read_docs() -> dict[str, list[str]]:
    docs = {}
    for key, path in DOCS.items():
        try:
            out = subprocess.run(["git", "-C", str(REPO), "show", f"{COMMIT}:{path}"],
                                 capture_output=True, text=True, check=False)
        except FileNotFoundError:
            sys.exit("learning_curve: git is not installed; it reads the docs at commit " + COMMIT)
        if out.returncode != 0:
            sys.exit(f"learning_curve: cannot read {path} at commit {COMMIT} in {REPO} "
                     f"(a git clone with that commit is needed): {out.stderr.strip()}")
        docs[key] = out.stdout.splitlines()
    return docs


def cited_text(docs: dict[str, list[str]], ref: str) -> str:
    lines = []
    for m in re.finditer(r"([MC]):(\d+)(?:-(\d+))?", ref):
        first, last = int(m.group(2)), int(m.group(3) or m.group(2))
        lines += docs[m.group(1)][first - 1:last]
    return " ".join(lines)  # joined, so a number broken across two cited lines still matches


def printed(text: str, value) -> bool:
    if isinstance(value, D.Diff):
        return f"{value.delta:+.3f}" in text
    if isinstance(value, float):
        return f"{value:.3f}" in text or f"{value:g}" in text
    return f"{value:,}" in text or str(value) in text


def check(docs: dict[str, list[str]]) -> list[str]:
    """Every transcribed metric, delta and per-epoch time must be on the lines its row cites."""
    bad = []
    for lname, rows in LINEAGES.items():
        for r in rows:
            text = cited_text(docs, r["ref"])
            values = [(k, r[k]) for k in METRICS if r.get(k) is not None]
            values += [("secs", s) for s in r.get("secs", ())]
            bad += [f"{lname} {r['v']} {k}={v} not on {r['ref']}" for k, v in values
                    if not printed(text, v)]
    for name, (value, ref) in D.FACTS.items():
        for v in value if isinstance(value, tuple) else (value,):
            if not printed(cited_text(docs, ref), v):
                bad.append(f"{name}={v} not on {ref}")
    return bad


# ---------------------------------------------------------------- cumulative compute
def resolve(rows: list[dict], others: dict[str, list[dict]]) -> None:
    """Fill cumulative steps, crops, minutes; replace Diff values by base + delta (in place)."""
    by = {r["v"]: r for r in rows}
    ext = {f"{n} {r['v']}": r for n, rs in others.items() for r in rs}
    for r in rows:
        for k in METRICS:
            if isinstance(r.get(k), D.Diff):
                r[k + "_diff"] = True
                r[k] = by[r[k].base][k] + r[k].delta
        parent = by.get(r.get("par")) or ext.get(r.get("par"))
        if r.get("steps") is None and parent is not None:
            r["steps"] = parent["steps"] + r.get("add_steps", 0)
            r["gpu"] = parent.get("gpu", 0) + r.get("add_gpu", 0)
            if "secs" in r or r.get("add_min") is not None:
                stage_min = sum(r["secs"]) / 60 if "secs" in r else r["add_min"]
                if parent.get("wall") is not None:
                    r["wall"] = parent["wall"] + stage_min
                    r["thr"] = parent.get("thr", parent["wall"]) + stage_min * r.get("thr_x", 1)
        if r.get("steps") is not None:
            r["crops"] = r["steps"] * BATCH


def resolve_all() -> None:
    resolve(D.COLOUR, {})
    resolve(D.GRAY, {})
    resolve(D.DUAL, {"gray": D.GRAY, "colour": D.COLOUR})
    resolve(D.CT, {})


def rates() -> dict[str, float]:
    """Measured throughputs: CPU crops per thread-second, H200 crops/s, CT slabs per thread-s."""
    crops = secs = 0
    for r in D.DUAL + D.COLOUR + D.GRAY:  # 1-thread stages on 24,000 scans
        if r["scans"] == 24000 and r.get("secs") and r.get("thr_x", 1) == 1:
            crops += r["add_steps"] * BATCH
            secs += sum(r["secs"])
    ct = [r for r in D.CT if r["v"] in ("1.5.0", "1.7.0", "1.8.0", "1.9.0")]
    ct_slabs = sum(r["add_steps"] * BATCH for r in ct)
    ct_secs = sum(sum(r["secs"]) for r in ct)
    gpu_crops = D.FACTS["gpu_crops"][0]
    gpu = gpu_crops / sum(D.FACTS["gpu_step_secs"][0])
    return dict(cpu=crops / secs, cpu_crops=crops, cpu_secs=secs, gpu=gpu,
                gpu_wall=gpu_crops / (D.FACTS["gpu_budget_min"][0] * 60),
                speedup=gpu * secs / crops,
                ct=ct_slabs / ct_secs, ct_slabs=ct_slabs, ct_secs=ct_secs)


def cost(rate: dict, x_now: float, doublings: float, ct: bool = False):
    """(total crops, CPU thread-hours, H200-hours) after `doublings` more; None if never."""
    if not math.isfinite(doublings) or doublings > 200:
        return None
    total = x_now * 2 ** doublings
    cpu = rate["ct"] if ct else rate["cpu"]
    gpu = rate["ct"] * rate["speedup"] if ct else rate["gpu"]  # CT never ran on a GPU
    return total, total / cpu / 3600, total / gpu / 3600


# ---------------------------------------------------------------- fits
def ols(x, y, degree: int = 1):
    """Polynomial least squares: (coefficients low to high, SE of the highest, residual SD)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = np.vander(x, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    s2 = res @ res / max(len(x) - degree - 1, 1)
    cov = s2 * np.linalg.inv(a.T @ a)
    return coef, math.sqrt(cov[-1, -1]), math.sqrt(s2)


def logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


def fit(label: str, metric: str, pts: list[tuple], target: float, xname: str = "crops") -> dict:
    """y = a + b log2(x) over pts (x, y, version); doublings to target at b, b +- SE, and logit."""
    t = [math.log2(p[0]) for p in pts]
    y = [p[1] for p in pts]
    (a, b), se, sd = ols(t, y)
    y_now = a + b * max(t)

    def doublings(slope):
        return (target - y_now) / slope if slope > 0 else math.inf

    (la, lb), _, _ = ols(t, [logit(v) for v in y])
    n_logit = (logit(target) - la - lb * max(t)) / lb if lb > 0 else math.inf
    return dict(label=label, metric=metric, n=len(pts), b=b, se=se, sd=sd, span=max(t) - min(t),
                y_now=y_now, x_now=2 ** max(t), target=target, xname=xname,
                vers=",".join(p[2] for p in pts), n_mid=doublings(b), n_fast=doublings(b + se),
                n_slow=doublings(b - se), n_logit=n_logit)


def sel(rows, key, scans=None, kept_only=False, kinds=("net", "fresh")) -> list[dict]:
    return [r for r in rows if r.get(key) is not None and r["kind"] in kinds
            and (scans is None or r["scans"] == scans) and (r["kept"] or not kept_only)]


def pts(rows, key, x="crops") -> list[tuple]:
    return [(r[x], r[key], r["v"]) for r in rows]


def lineages_2d() -> list[tuple[str, list[dict]]]:
    dual = [r for r in D.DUAL if r["v"] in DUAL_LINE]
    return [("dual", dual), ("gray", D.GRAY), ("colour", D.COLOUR)]


def fits_2d() -> list[dict]:
    out = []
    for lname, rows in lineages_2d():
        for key, target, metric in (("pd2", 0.95, "Pd@Pfa0.05 test2"), ("ap2", 0.90, "AP50 test2")):
            for tag, chosen in (("all network-only, test2 era", sel(rows, key)),
                                ("24,000 scans only (compute alone)", sel(rows, key, scans=24000)),
                                ("kept releases only", sel(rows, key, kept_only=True))):
                out.append(fit(f"{lname}: {tag}", metric, pts(chosen, key), target))
    # AP50 on the 400-scan test set, from the first version after the last recipe change
    first = {"dual": "3.1.0", "gray": "2.2.0", "colour": "2.3.0"}
    for lname, rows in (("dual", D.DUAL), ("gray", D.GRAY), ("colour", D.COLOUR)):
        start = [r["v"] for r in rows].index(first[lname])
        kinds = ("net",) if lname == "dual" else ("net", "fresh")  # dual's line, not 3.18.0
        chosen = sel(rows[start:], "ap4", kinds=kinds)
        out.append(fit(f"{lname}: whole history after the last recipe change, test (400)",
                       "AP50 test400", pts(chosen, "ap4"), 0.90))
    out += fits_data_size()
    return out


def fits_data_size() -> list[dict]:
    """The stages that grew the training set (compute grew with them: not separable)."""
    growth = {"dual": (D.DUAL, ("3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0")),
              "gray": (D.GRAY, ("2.2.0", "2.3.0", "2.4.0", "2.5.0", "2.6.0")),
              "colour": (D.COLOUR, ("2.2.0", "2.3.0", "2.4.0", "2.5.0", "2.6.0", "2.7.0"))}
    out = []
    for lname, (rows, versions) in growth.items():
        chosen = [r for r in rows if r["v"] in versions]
        label = f"{lname}: data-growth stages vs training-set size"
        out.append(fit(f"{label}, test (400)", "AP50 test400", pts(chosen, "ap4", "scans"), 0.90,
                       "scans"))
        on2 = [r for r in chosen if r.get("pd2") is not None]
        out.append(fit(f"{label}, test2", "Pd@Pfa0.05 test2", pts(on2, "pd2", "scans"), 0.95,
                       "scans"))
        out.append(fit(f"{label}, test2", "AP50 test2", pts(on2, "ap2", "scans"), 0.90, "scans"))
    return out


def fits_ct() -> list[dict]:
    net = [r for r in D.CT if r["kind"] == "net"]

    def has(key):
        return [r for r in net if r.get(key) is not None]

    t2, t1k = "CT: network-only, test2 (400)", "CT: network-only, calib2+test2 (1,000)"
    early = [r for r in has("ap100") if r["v"] != "ct_long"]
    return [
        fit(t2, "3-D AP test2", pts(has("ap2"), "ap2"), 0.85, "slabs"),
        fit(t2 + " vs distinct volumes", "3-D AP test2", pts(has("ap2"), "ap2", "uniq"), 0.85,
            "volumes"),
        fit(t2, "Pd@Pfa0.05 test2", pts(has("pd2"), "pd2"), 0.95, "slabs"),
        fit(t1k, "3-D AP 1k", pts(has("ap1k"), "ap1k"), 0.85, "slabs"),
        fit(t1k, "Pd@Pfa0.05 1k", pts(has("pd1k"), "pd1k"), 0.95, "slabs"),
        fit(t1k + " vs distinct volumes", "Pd@Pfa0.05 1k", pts(has("pd1k"), "pd1k", "uniq"), 0.95,
            "volumes"),
        fit("CT: early data growth, test (100) vs volumes", "3-D AP test100",
            pts(early, "ap100", "scans"), 0.85, "volumes"),
    ]


def sat_fit(t, y):
    """y = A + C 2^(-alpha t') over a grid of alpha; best (SSE, alpha, A, C) and the range of A
    over alphas with n ln(SSE / SSEmin) <= 1 and C < 0 (a rising curve), roughly 1 sigma."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    t0 = t - t.min()
    res = []
    for alpha in np.concatenate([np.linspace(0.02, 1, 99), np.linspace(1.05, 8, 140)]):
        x = np.vstack([np.ones(len(t)), 2 ** (-alpha * t0)]).T
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        r = y - x @ coef
        res.append((float(r @ r), float(alpha), float(coef[0]), float(coef[1])))
    best = min(res)
    ok = [r for r in res if len(t) * math.log(max(r[0], 1e-12) / max(best[0], 1e-12)) <= 1.0
          and r[3] < 0]
    return best, ((min(r[2] for r in ok), max(r[2] for r in ok)) if ok else (None, None))


# ---------------------------------------------------------------- markdown
def md_row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def md_table(head: list[str], rows: list) -> list[str]:
    return [md_row(head), "| --- " * len(head) + "|"] + [md_row(r) for r in rows]


def num(r: dict, key: str) -> str:
    """A metric as printed; a dagger marks one computed as another version's plus a delta."""
    v = r.get(key)
    return "" if v is None else f"{v:.3f}" + ("†" if r.get(key + "_diff") else "")


def comma(x) -> str:
    return "" if x is None else f"{int(round(x)):,}"


def release(r: dict) -> str:
    return f"{r['pdr']:.3f} @ {r['pfr']:.3f}" if r.get("pdr") is not None else ""


def history_2d(name: str, rows: list[dict]) -> list[str]:
    head = ["version", "kind", "kept", "train scans", "cum. steps (b16)", "cum. crops",
            "CPU wall min", "CPU thread-min", "H200 min", "test2 AP50", "test2 Pd@Pfa0.05",
            "test AP50", "test Pd @ Pfa (release thr.)", "source"]
    body = [[r["v"], r["kind"], "yes" if r["kept"] else "no", comma(r["scans"]),
             comma(r.get("steps")), comma(r.get("crops")), comma(r.get("wall")),
             comma(r.get("thr")), f"{r['gpu']:.1f}" if r.get("gpu") else "", num(r, "ap2"),
             num(r, "pd2"), num(r, "ap4"), release(r), r["ref"]] for r in rows]
    return [f"\n### {name}\n"] + md_table(head, body)


def history_ct() -> list[str]:
    head = ["version", "kind", "kept", "train vols (stage)", "distinct vols so far",
            "cum. steps (b16)", "cum. slabs", "CPU min (1 thread)", "test (100) 3-D AP",
            "test2 (400) 3-D AP", "test2 Pd@0.05", "calib2+test2 (1,000) 3-D AP", "1,000 Pd@0.05",
            "test3 (800) 3-D AP", "test3 Pd@0.05", "Pd @ Pfa (release)", "source"]
    body = [[r["v"], r["kind"], "yes" if r["kept"] else "no", comma(r["scans"]), comma(r["uniq"]),
             comma(r["steps"]), comma(r["crops"]), comma(r.get("wall"))]
            + [num(r, k) for k in ("ap100", "ap2", "pd2", "ap1k", "pd1k", "ap3", "pd3")]
            + [release(r), r["ref"]] for r in D.CT]
    return ["\n### CT\n"] + md_table(head, body)


def nd(v: float) -> str:
    return "never (slope <= 0)" if not math.isfinite(v) else f"{v:.1f}"


def fits_table(fits: list[dict]) -> list[str]:
    head = ["fit", "metric", "points (versions)", "x-span (doublings)",
            "slope per doubling +- 1 SE", "resid. SD", "fitted now", "target",
            "doublings needed (slope, slope+SE .. slope-SE)", "logit-linear doublings"]
    body = [[o["label"], o["metric"], f"{o['n']} ({o['vers']})", f"{o['span']:.2f}",
             f"{o['b']:+.3f} +- {o['se']:.3f}", f"{o['sd']:.3f}", f"{o['y_now']:.3f}",
             f"{o['target']:.2f}", f"{nd(o['n_mid'])} ({nd(o['n_fast'])} .. {nd(o['n_slow'])})",
             nd(o["n_logit"])] for o in fits]
    return ["\n## Fits: y = a + b * log2(x), ordinary least squares\n"] + md_table(head, body)


def cost_table(fits: list[dict], rate: dict) -> list[str]:
    def g(t, i):
        return "never" if t is None else f"{t[i]:.3g}"

    body = []
    for o in fits:
        if o["xname"] not in ("crops", "slabs") or "kept releases" in o["label"]:
            continue
        ct = o["xname"] == "slabs"
        mid, lo, hi, lg = (cost(rate, o["x_now"], o[k], ct)
                           for k in ("n_mid", "n_fast", "n_slow", "n_logit"))
        n_slow = "never" if not math.isfinite(o["n_slow"]) else f"{o['n_slow']:.1f}"
        body.append([o["label"], o["metric"], f"{o['x_now']:.3g}",
                     f"{o['n_mid']:.1f} ({o['n_fast']:.1f} .. {n_slow})", f"x{2 ** o['n_mid']:.3g}",
                     f"{g(mid, 1)} ({g(lo, 1)} .. {g(hi, 1)})",
                     f"{g(mid, 2)} ({g(lo, 2)} .. {g(hi, 2)})",
                     "never" if lg is None else f"{o['n_logit']:.1f} / {lg[2]:.3g}"])
    head = ["fit", "metric", "x now", "doublings (range)", "factor on x now",
            "CPU thread-hours total (range)", "H200-hours total (range)",
            "logit fit: doublings / H200-hours"]
    intro = ("Total = current cumulative crops (slabs for CT) x 2^doublings. CPU thread-hours "
             f"at {rate['cpu']:.1f} crops/thread-s (CT: {rate['ct']:.1f} slabs/thread-s); "
             "H200-hours at "
             f"{rate['gpu']:.0f} crops/s (CT: the CPU rate x {rate['speedup']:.0f}, assumed). "
             "Range = slope +- 1 SE; logit = same data fitted as logit(y) linear in log2(x).\n")
    return (["\n## What those doublings cost (total compute at the target, if the straight line "
             "held)\n", intro] + md_table(head, body))


def stage_table() -> list[str]:
    """Each network-only stage on 24,000 scans against its parent, on test2."""
    body, notes = [], []
    for lname, rows in (("dual", D.DUAL), ("gray", D.GRAY), ("colour", D.COLOUR)):
        by = {r["v"]: r for r in rows}
        gains = []
        for r in rows:
            p = by.get(r.get("par"))
            if (r["scans"] != 24000 or r["kind"] not in ("net", "fresh", "start")
                    or r.get("pd2") is None or p is None or p.get("pd2") is None):
                continue
            dd = math.log2(r["crops"] / p["crops"])
            gains.append((dd, r["pd2"] - p["pd2"], r["ap2"] - p["ap2"]))
            body.append([lname, r["v"], p["v"], f"{r['crops'] - p['crops']:,}", f"{dd:.3f}",
                         f"{gains[-1][1]:+.3f}", f"{gains[-1][2]:+.3f}",
                         "yes" if r["kept"] else "no"])
        dd, dpd, dap = (sum(g[i] for g in gains) for i in range(3))
        notes.append(f"* {lname}: {len(gains)} stages, {dd:.2f} doublings in all, summed dPd "
                     f"{dpd:+.3f} ({dpd / dd:+.3f} per doubling), summed dAP50 {dap:+.3f} "
                     f"({dap / dd:+.3f} per doubling); last 4 stages dPd: "
                     + ", ".join(f"{g[1]:+.3f}" for g in gains[-4:]))
    head = ["lineage", "stage", "parent", "extra crops", "doublings of cum. crops", "dPd@0.05",
            "dAP50", "kept"]
    return (["\n## Stage-by-stage change at Pfa 0.05 on test2 (network-only stages on 24,000 "
             "scans)\n"] + md_table(head, body) + [""] + notes)


def flattening_table(rate: dict) -> list[str]:
    """Slope over the last five points, quadratic curvature and a saturating fit's ceiling."""
    series = []
    for lname, rows in lineages_2d():
        name = "dual 3.3-3.13" if lname == "dual" else lname
        for key, target, metric in (("pd2", 0.95, "Pd@Pfa0.05 test2"), ("ap2", 0.90, "AP50 test2")):
            chosen = sorted(sel(rows, key), key=lambda r: r["crops"])
            series.append((name, metric, target, pts(chosen, key)))
    net = [r for r in D.CT if r["kind"] == "net"]
    for key, target, metric in (("ap2", 0.85, "3-D AP test2"), ("pd1k", 0.95, "Pd@Pfa0.05 1k"),
                                ("ap1k", 0.85, "3-D AP 1k")):
        series.append(("CT", metric, target, sorted(pts([r for r in net if r.get(key) is not None],
                                                       key))))
    body = []
    for name, metric, target, p in series:
        t, y = [math.log2(q[0]) for q in p], [q[1] for q in p]
        last = p[-5:]
        (a, b), se, _ = ols([math.log2(q[0]) for q in last], [q[1] for q in last])
        quad, quad_se, _ = ols(t, y, degree=2)
        best, (a_lo, a_hi) = sat_fit(t, y)
        if best[2] > 1.0:
            ceiling = f"none below 1 (best A {best[2]:.2f}: no curvature resolved)"
        elif a_lo is None:
            ceiling = f"{best[2]:.3f}"
        else:
            ceiling = f"{best[2]:.3f} ({a_lo:.3f} .. {min(a_hi, 1.0):.3f})"
        x_last = max(q[0] for q in last)
        n = (target - a - b * math.log2(x_last)) / b if b > 0 else math.inf
        tc = cost(rate, x_last, n, ct=name == "CT")
        to_target = ("never (slope <= 0)" if tc is None else
                     f"{n:.1f} doublings: x{2 ** n:.3g}, {tc[1]:.3g} CPU thread-h, "
                     f"{tc[2]:.3g} H200-h")
        body.append([name, metric, f"{b:+.3f} +- {se:.3f} ({','.join(q[2] for q in last)})",
                     to_target, f"{quad[2]:+.3f} +- {quad_se:.3f}", ceiling, f"{target:.2f}"])
    head = ["series", "metric", "recent-window slope per doubling +- SE (points)",
            "to target at the recent slope (total compute)", "quadratic c +- SE",
            "saturating fit: ceiling A (1-sigma range)", "target"]
    intro = ("Same points as the 'all network-only' fits. Recent window = the last 5 points by "
             "cumulative crops. Quadratic: y = a + b t + c t^2 with t = log2(crops); c < 0 means "
             "the gain per doubling is shrinking. Saturating: y = A - B * crops^(-alpha), best "
             "alpha by grid; A is the ceiling it implies, with the range of A over alphas whose "
             "fit is within n*ln(SSE/SSEmin) <= 1 (rough 1-sigma).\n")
    return (["\n## Is it flattening? Recent-window slope, curvature and a saturating fit\n", intro]
            + md_table(head, body))


def throughput(rate: dict) -> list[str]:
    return [
        "## Throughput used for the conversions\n",
        f"* CPU: {rate['cpu_crops']:,} crops in {rate['cpu_secs']:,} s over the 1-thread stages on "
        f"24,000 scans (seconds per epoch in the cards) = **{rate['cpu']:.1f} crops per "
        "thread-second** (a shared 2-core box, so neighbours' slowdown is included).",
        f"* H200 (dual 3.6.0, M:1218-1222): {D.FACTS['gpu_crops'][0]:,} crops in "
        f"{sum(D.FACTS['gpu_step_secs'][0])} s of steps = **{rate['gpu']:.0f} crops/s** "
        f"({rate['gpu_wall']:.0f} crops/s over the {D.FACTS['gpu_budget_min'][0]}-min budget); "
        f"batch 64, 14 loader processes, loader-bound. That is {rate['speedup']:.0f}x one CPU "
        "thread.",
        f"* CT CPU: {rate['ct_slabs']:,} slabs in {rate['ct_secs']:,} s (CT 1.5.0, 1.7.0-1.9.0, "
        f"1 thread) = **{rate['ct']:.1f} slabs per thread-second**. No CT stage ran on a GPU; CT's "
        f"H200-hours assume the same {rate['speedup']:.0f}x speed-up (an assumption).",
    ]


def other_sums(fits: list[dict], rate: dict) -> list[str]:
    ct = {r["v"]: r for r in D.CT}
    a, b = ct["1.5.0"], ct["1.9.0"]
    dd = math.log2(b["crops"] / a["crops"])
    pos, low, found = (D.FACTS[k][0] for k in ("test2_positives", "test2_low_cnr", "low_cnr_found"))
    dual = next(o for o in fits if o["label"] == "dual: all network-only, test2 era"
                and o["metric"].startswith("Pd"))
    sl = D.DUAL[[r["v"] for r in D.DUAL].index("3.19.0")]["pd2"] - D.DUAL[
        [r["v"] for r in D.DUAL].index("3.17.0")]["pd2"]
    n_sl = (dual["target"] - dual["y_now"] - sl) / dual["b"]
    return [
        "\n## Other sums\n",
        f"* CT test3, 1.5.0 -> 1.9.0: {dd:.2f} doublings of slabs, "
        f"3-D AP {b['ap3'] - a['ap3']:+.3f}, Pd@0.05 {b['pd3'] - a['pd3']:+.3f}.",
        f"* test2 Pd ceiling if every positive scan with a packet of CNR >= 3 alarmed and "
        f"{found:.0%} of the {low} without one did: ({pos} - {low} + {found} x {low}) / {pos} = "
        f"{(pos - low + found * low) / pos:.3f}.",
        f"* Dual's second-look offset on test2 (3.19.0 - 3.17.0, {sl:+.3f}) taken off the gap: "
        f"{dual['n_mid']:.1f} -> {n_sl:.1f} doublings on the dual straight line.",
    ]


def report() -> str:
    rate = rates()
    fits = fits_2d() + fits_ct()
    legend = ("kind: net = network training only; recipe = loss/crop change; thresh = same "
              "weights, new threshold (moves only the release-threshold column); arch = other "
              "network or input; start = other initialisation; fresh = same compute as a sibling, "
              "new crops; sl = second look (no network training). CPU thread-min = wall x torch "
              "threads. † = printed only as a difference to another version; value = that "
              "version's + the difference.")
    lines = throughput(rate) + ["\n## Tables\n", legend]
    for name, rows in (("Dual (6-channel from 3.0.0)", D.DUAL), ("Gray", D.GRAY),
                       ("Colour", D.COLOUR)):
        lines += history_2d(name, rows)
    lines += history_ct() + fits_table(fits) + cost_table(fits, rate) + stage_table()
    lines += flattening_table(rate) + other_sums(fits, rate)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=(
        "Needs git and a clone holding commit " + COMMIT + ": the cited doc lines are read from "
        "it. Exits 1 if a transcribed number is not on the lines it cites."))
    ap.add_argument("--out", type=Path, help="write the markdown here instead of stdout")
    args = ap.parse_args(argv)
    bad = check(read_docs())
    if bad:
        print("learning_curve: transcription check failed:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    resolve_all()
    text = report()
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
