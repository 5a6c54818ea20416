"""`fit`: the whole training run behind ``concealscan train`` (single process or torchrun DDP)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detector.errors import UsageError
from detector.preprocess import InputSpec
from training import checkpoint
from training.augment import build_augment
from training.config import TrainConfig, to_dict
from training.data import CocoScans, MixSampler, SimScans, TrainSet, collate
from training.engine import evaluate_torch, train_one_epoch
from training.metrics import alarm_threshold_for, coco_ap
from training.model import ConcealNet


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where collective operations' tensors live (NCCL takes only CUDA tensors)."""
        if self.world > 1 and torch.cuda.is_available():
            return torch.device(f"cuda:{self.local_rank}")
        return torch.device("cpu")


def setup_distributed() -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend=backend)
    return Dist(int(os.environ["RANK"]), world, local_rank)


def input_spec(cfg: TrainConfig) -> InputSpec:
    if cfg.kind == "ct":
        from training.ct_data import spec_for

        return spec_for(cfg.data.ct, cfg.data.channels)
    spec = InputSpec.for_kind(cfg.kind, cfg.data.channels)
    return InputSpec(**{**spec.__dict__, "scale": cfg.data.scale})


def build_data(cfg: TrainConfig, spec: InputSpec, dist: Dist, cache_dir: Path | None = None):
    if cfg.kind == "ct":
        from training.ct_data import build_ct_data

        return build_ct_data(cfg, spec, dist)
    sources = [CocoScans(s.path, cfg.kind, cfg.classes, s.category_map) for s in cfg.data.train]
    weights = [s.weight for s in cfg.data.train]
    draw_weights = [src.draw_weights(s.oversample) if s.oversample else None
                    for src, s in zip(sources, cfg.data.train, strict=True)]
    boosted = [w for w in draw_weights if w is not None]
    if boosted and dist.rank == 0:
        w = np.concatenate(boosted)
        print(f"oversample: {int((w > 1).sum())} of {len(w)} scans weighted up, "
              f"{w[w > 1].sum() / w.sum():.0%} of those sources' draws", file=sys.stderr)
    sources += [SimScans(s, cfg.kind) for s in cfg.data.sim]
    weights += [s.weight for s in cfg.data.sim]
    draw_weights += [None] * len(cfg.data.sim)
    augment = build_augment(cfg.kind, cfg.augment, seed=cfg.optim.seed)
    train_set = TrainSet(sources, spec, augment, seed=cfg.optim.seed, cache=cfg.data.cache,
                         decoy_crops=cfg.augment.decoy_crops,
                         hard_negatives=cfg.augment.hard_negatives, cache_dir=cache_dir)
    sampler = MixSampler([len(s) for s in sources], weights, cfg.optim.seed, dist.rank,
                         dist.world, draw_weights)
    val = cfg.data.val
    val_set = CocoScans(val.path, cfg.kind, cfg.classes, val.category_map) if val else None
    if dist.rank == 0:
        for data in [*sources[:len(cfg.data.train)], *([val_set] if val_set else [])]:
            data.say_left_out()
    return train_set, sampler, val_set


class Cosine:
    """Linear warm-up, then cosine to zero at step ``total``. A callable object rather than a
    function so that LambdaLR's state_dict keeps ``total``, which ``optim.max_minutes`` may
    shorten during the first epoch: a resumed run then continues the same schedule."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - self.warmup) / span)))


def validate(model, val_set, spec, cfg: TrainConfig, device) -> dict:
    if cfg.kind == "ct":
        from training.ct_eval import ap_3d, evaluate_volumes

        records = evaluate_torch(model, val_set, spec, device, progress=False,
                                 run=evaluate_volumes)
        ap = ap_3d(records)
        out = {"ap50": ap, "ap3d_25": ap}  # "ap50" is what checkpoints are ranked by
    else:
        records = evaluate_torch(model, val_set, spec, device, progress=False)
        ap50, ap = coco_ap(records, cfg.classes)
        out = {"ap50": ap50, "ap50_95": ap}
    if cfg.target_pfa is not None and any(not r.positive for r in records):
        point = alarm_threshold_for(records, target_pfa=cfg.target_pfa)
        out["threshold"], out["pd"], out["pfa"] = point.threshold, point.pd, point.pfa
        if point.never_alarms:  # best.pt may carry it: export would ship a silent model
            print(f"warning: target_pfa {cfg.target_pfa} on the validation set: {point.note}; "
                  f"pick the threshold again before export (evaluate --target-pfa on a "
                  f"calibration set)", file=sys.stderr)
    return out


@dataclass
class _Run:
    """Everything one training run holds between epochs."""

    cfg: TrainConfig
    dist: Dist
    device: torch.device
    spec: InputSpec
    model: ConcealNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    out: Path
    provenance: dict
    state: dict

    def save(self, path: Path, **extra) -> None:
        checkpoint.save(path, model=self.model, spec=self.spec, classes=self.cfg.classes,
                        name=self.cfg.name, provenance=self.provenance, **extra)


def _prepare(cfg: TrainConfig, config_path: str, steps_per_epoch: int, dist: Dist,
             resume: str | None) -> _Run:
    device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    spec = input_spec(cfg)
    model = ConcealNet(cfg.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr,
                                  weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, Cosine(cfg.optim.warmup_steps, steps_per_epoch * cfg.optim.epochs))
    state = {"epoch": 0, "best": -1.0, "bad_epochs": 0, "epochs": cfg.optim.epochs, "stream": 0}
    if resume:
        ckpt = checkpoint.load(resume, map_location=device)
        try:
            checkpoint.check_resumable(ckpt, spec, cfg.classes, cfg.model)
        except ValueError as exc:
            raise UsageError(f"--resume {resume}: {exc}") from exc
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["train_state"]["optimizer"])
        scheduler.load_state_dict(ckpt["train_state"]["scheduler"])
        saved = ckpt["train_state"]
        state.update({k: saved[k] for k in ("epoch", "best", "bad_epochs")})
        state["stream"] = saved.get("stream", 0)  # older checkpoints: seed and epoch alone
        if saved.get("cut_from") == cfg.optim.epochs:  # max_minutes' plan, recipe unchanged
            state.update(epochs=saved["epochs"], cut_from=saved["cut_from"])
        # a recipe resumed with other epochs restarts the cosine over its own length
        scheduler.lr_lambdas[0].warmup = cfg.optim.warmup_steps
        scheduler.lr_lambdas[0].total = steps_per_epoch * state["epochs"]
    elif cfg.init_from:
        try:
            start = checkpoint.load(cfg.init_from, device)
            note = checkpoint.init_weights(model, spec, start, cfg.classes,
                                           other_scale=cfg.init_from_other_scale,
                                           channels=cfg.init_channels, widen=cfg.init_widen)
        except ValueError as exc:
            raise UsageError(f"{config_path}: {exc}") from exc
        if cfg.optim.new_stream:
            state["stream"] = checkpoint.stream_key(start)
            note += f"; data stream {state['stream']} (keyed by this checkpoint)"
        if dist.main:
            print(f"init_from {cfg.init_from}: {note}", file=sys.stderr)
    data_names = [s.path for s in cfg.data.train] + [f"sim:{s.seed}" for s in cfg.data.sim]
    prov = checkpoint.provenance(to_dict(cfg), config_path, data_names)
    return _Run(cfg, dist, device, spec, model, optimizer, scheduler,
                Path(cfg.out_dir) / cfg.name, prov, state)


def _save_last(run: _Run, row: dict, epoch: int) -> None:
    """``last.pt`` (and with ``optim.keep_epochs`` its copy for this epoch)."""
    run.save(run.out / "last.pt", metrics=row,
             state={**run.state, "optimizer": run.optimizer.state_dict(),
                    "scheduler": run.scheduler.state_dict()})
    if run.cfg.optim.keep_epochs:
        shutil.copyfile(run.out / "last.pt", run.out / f"epoch_{epoch + 1:03d}.pt")


def _end_of_epoch(run: _Run, epoch: int, row: dict, val_set, logger) -> bool:
    """Validate, checkpoint and log (rank 0 only); True when early stopping triggers."""
    cfg, state, stop = run.cfg, run.state, False
    if val_set is not None and (epoch + 1) % cfg.optim.eval_every == 0:
        row.update(validate(run.model, val_set, run.spec, cfg, run.device))
        if row["ap50"] > state["best"]:
            state["best"], state["bad_epochs"] = row["ap50"], 0
            run.save(run.out / "best.pt", alarm_threshold=row.get("threshold"), metrics=row)
        else:
            state["bad_epochs"] += 1
        stop = state["bad_epochs"] >= cfg.optim.patience
    state["epoch"] = epoch + 1
    _save_last(run, row, epoch)
    logger.log(row)
    if stop:
        print(f"early stop: AP50 did not improve for {cfg.optim.patience} evaluations",
              file=sys.stderr)
    return stop


def shared_cache_dir(name: str) -> Path:
    """A fresh folder for the scan cache that loader processes share: in memory (/dev/shm)
    where the system has it, else the temporary folder."""
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=f"concealscan-cache-{name}-", dir=root))


def fit(cfg: TrainConfig, config_path: str, resume: str | None = None) -> Path:
    """Train; return the path of the best checkpoint (``last.pt`` when there is no val set).

    ``data.cache`` with loader processes (``optim.workers`` > 0) keeps the decoded scans as
    files in memory that all of them share, removed when the run ends."""
    dist = setup_distributed()
    cache_dir = None
    if cfg.data.cache and cfg.optim.workers > 0 and cfg.kind != "ct":
        cache_dir = shared_cache_dir(cfg.name)
        if dist.main:
            print(f"cache: decoded scans shared by the {cfg.optim.workers} loader processes "
                  f"in {cache_dir}", file=sys.stderr)
    try:
        return _fit(cfg, config_path, resume, dist, cache_dir)
    finally:
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)


def _fit(cfg: TrainConfig, config_path: str, resume: str | None, dist: Dist,
         cache_dir: Path | None) -> Path:
    if cfg.optim.threads:
        torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.optim.seed)
    spec = input_spec(cfg)
    try:
        train_set, sampler, val_set = build_data(cfg, spec, dist, cache_dir)
    except ValueError as exc:  # a data set missing, not JSON, not COCO, nothing usable in it
        raise UsageError(f"{config_path}: data: {exc}") from exc
    if len(sampler) < cfg.optim.batch_size:  # batches are whole (drop_last): no step at all
        raise UsageError(f"{config_path}: an epoch draws {len(sampler)} scan(s) (per process), "
                         f"fewer than optim.batch_size {cfg.optim.batch_size}: no training "
                         "step would run; add data or lower the batch size")
    steps_per_epoch = max(1, len(sampler) // cfg.optim.batch_size)
    run = _prepare(cfg, config_path, steps_per_epoch, dist, resume)
    net = run.model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[dist.local_rank] if run.device.type == "cuda" else None)
    epoch = run.state["epoch"]
    logger = _Logger(run.out, epoch) if dist.main else None
    while epoch < run.state["epochs"]:
        loader = epoch_loader(cfg, train_set, sampler, run.state["stream"] + epoch,
                              pin_memory=run.device.type == "cuda")
        t0 = time.time()
        budget = cfg.optim.max_minutes and epoch == 0
        probe = _budget_probe(run, steps_per_epoch, t0) if budget else None
        losses = train_one_epoch(net, loader, run.optimizer, run.scheduler, run.device, epoch,
                                 cfg.loss, progress=dist.main, on_step=probe)
        row = {"epoch": epoch, **_average(losses, dist), "lr": run.scheduler.get_last_lr()[0],
               "seconds": time.time() - t0}
        stop = _end_of_epoch(run, epoch, row, val_set, logger) if dist.main else False
        if budget and _fit_to_budget(run, time.time() - t0, steps_per_epoch,
                                     "the first epoch (validation and saving included)"):
            if dist.main:  # last.pt again, so that a resume keeps the shortened plan
                _save_last(run, row, epoch)
        run.state["epoch"] = epoch = epoch + 1
        if _broadcast_int(stop, dist):
            break
    if logger:
        logger.close()
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    best = run.out / "best.pt"
    return best if best.exists() else run.out / "last.pt"


def epoch_loader(cfg: TrainConfig, train_set, sampler, drawn: int,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The batches of stream epoch ``drawn`` (the run's stream key plus its epoch): sampler,
    augmentation and torch's generator all keyed by it, so a resumed run draws the same."""
    sampler.set_epoch(drawn)
    train_set.set_epoch(drawn)
    torch.manual_seed(cfg.optim.seed * 1000 + drawn)
    return torch.utils.data.DataLoader(
        train_set, batch_size=cfg.optim.batch_size, sampler=sampler, drop_last=True,
        num_workers=cfg.optim.workers, collate_fn=collate, pin_memory=pin_memory)


def _average(losses: dict[str, float], dist: Dist) -> dict[str, float]:
    if dist.world == 1:
        return losses
    keys = list(losses)  # the same order on every rank, and as a single process logs it
    t = torch.tensor([losses[k] for k in keys], dtype=torch.float64, device=dist.device)
    torch.distributed.all_reduce(t)
    return {k: float(v) / dist.world for k, v in zip(keys, t, strict=True)}


def _broadcast_int(value: int, dist: Dist) -> int:
    """Rank 0's ``value`` on every rank."""
    if dist.world == 1:
        return value
    t = torch.tensor([int(value)], device=dist.device)
    torch.distributed.broadcast(t, src=0)
    return int(t.item())


def _budget_probe(run: _Run, steps_per_epoch: int, t0: float) -> Callable[[int], None]:
    """``optim.max_minutes``, first plan: a tenth of the way into the first epoch (at least one
    step), cut the epochs to what fits at that pace, so that the cosine is planned over the
    epochs that will run rather than cut off mid-way after the first. Validation is not in
    that pace; the end of the first epoch plans again with it (`_fit_to_budget`)."""
    at = max(1, steps_per_epoch // 10)

    def probe(step: int) -> None:
        if step == at:
            seconds = (time.time() - t0) * steps_per_epoch / step
            _fit_to_budget(run, seconds, steps_per_epoch,
                           f"the first {step} of {steps_per_epoch} steps")
    return probe


def _fit_to_budget(run: _Run, epoch_seconds: float, steps_per_epoch: int, measured: str) -> bool:
    """``optim.max_minutes``: cut the planned epochs to what fits in the budget when an epoch
    takes ``epoch_seconds`` (``measured`` says from what) and end the cosine there. True when
    the plan changed; never lengthens it."""
    budget = run.cfg.optim.max_minutes * 60
    planned = max(1, min(run.state["epochs"], int(budget // max(epoch_seconds, 1e-6))))
    planned = _broadcast_int(planned, run.dist)
    if planned < run.state["epochs"]:
        if run.dist.main:
            print(f"max_minutes {run.cfg.optim.max_minutes:g}: at the pace of {measured}, an "
                  f"epoch takes {epoch_seconds:.0f} s, so {planned} epochs instead of "
                  f"{run.state['epochs']}; the cosine now ends after epoch {planned - 1}",
                  file=sys.stderr)
        run.state.update(epochs=planned, cut_from=run.cfg.optim.epochs)
        run.scheduler.lr_lambdas[0].total = planned * steps_per_epoch
        return True
    return False


class _Logger:
    """One CSV row and TensorBoard scalars per epoch, plus a one-line console summary."""

    def __init__(self, out: Path, start_epoch: int = 0) -> None:
        """``start_epoch``: the first epoch this run logs. Rows of that epoch and later already
        in ``metrics.csv`` (a resume from an earlier ``epoch_NNN.pt`` into the same folder,
        or a new run there) are dropped, so that each epoch has one row; TensorBoard likewise
        drops its earlier events from that step on (``purge_step``)."""
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        self.csv_path = out / "metrics.csv"
        self.tb = SummaryWriter(str(out / "tb"), purge_step=start_epoch)
        self.fields = self.FIELDS
        if self.csv_path.exists():  # a resumed run keeps the columns its file began with
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames or self.FIELDS
                kept = [r for r in reader if int(r["epoch"]) < start_epoch]
            with self.csv_path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(kept)

    FIELDS = ("epoch", "total", "cls", "box", "obj", "lr", "seconds", "ap50", "ap50_95",
              "ap3d_25", "threshold", "pd", "pfa")

    def log(self, row: dict) -> None:
        exists = self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)) and np.isfinite(v):
                self.tb.add_scalar(k, v, row["epoch"])
        self.tb.flush()
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in row.items())
        print(shown, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.tb.close()
