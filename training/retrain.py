"""Retraining on reviewed scans, with a promotion gate.

Fine-tune the registry's model from its checkpoint, export it, evaluate the old and the new
*exported* model on one frozen test set, and promote the new one only if its Pd at the
operating Pfa is not lower. A model with a second look (`detector.second_look`) passes it on:
its trees carried over to the successor's boxes, refitted on sets the new CNN never trained
on, or dropped (`RetrainConfig.second_look`); the gate judges the successor as it will run.
The test set is frozen per registry (its fingerprint is kept in ``REG/testset.json``) and must
share no scan file with the training data.

A CT model (kind ``ct``) is fine-tuned on the slabs of CT volumes (`training.ct_data`) and
judged per volume (`training.ct_eval`); a data set folder then means its ``ct/annotations.json``
where there is one (what ``concealscan dataset from-reviews`` writes for CT reviews).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from detector import registry as reg_read
from detector.errors import UsageError
from detector.model import OnnxModel
from detector.second_look import KIND_FEATURES
from training import checkpoint
from training import registry as reg_write
from training.augment import AugmentConfig, build_augment
from training.data import CocoScans, DataSetError, MixSampler, TrainSet, collate, read_coco
from training.engine import evaluate, train_one_epoch
from training.export import export_onnx
from training.loss import LossConfig
from training.metrics import alarm_threshold_for
from training.second_look import MIN_CNN_SCORE, attach, fit_for_model


@dataclass(frozen=True)
class RetrainConfig:
    epochs: int = 3
    lr: float = 2e-4  # below the recipes' 3e-4..3e-3: adapt, do not forget the simulated data
    batch_size: int = 1  # reviewed scans differ in size; collate needs equal sizes
    target_pfa: float = 0.05
    seed: int = 0
    #: The successor's second look: "carry" (the base model's trees, if it has a second look,
    #: over the new CNN's boxes), "refit" (trees fitted afresh on ``second_look_data``, sets
    #: the new CNN never trained on; also for a base without one) or "drop" (the CNN alone).
    second_look: str = "carry"
    second_look_data: tuple = ()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size: expected >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr: expected (0, 1), got {self.lr}")
        if not 0 <= self.target_pfa <= 1:
            raise ValueError(f"target_pfa: expected 0..1, got {self.target_pfa}")
        if self.second_look not in ("carry", "refit", "drop"):
            raise ValueError(f"second_look: expected carry, refit or drop, got "
                             f"{self.second_look!r}")
        # plain strings: the config goes into the checkpoint's provenance (weights_only load)
        object.__setattr__(self, "second_look_data", tuple(map(str, self.second_look_data)))
        if (self.second_look == "refit") != bool(self.second_look_data):
            raise ValueError("second_look: refit needs second_look_data, and only it uses them")


def annotations_path(dataset: Path, kind: str = "dual") -> Path:
    """A data set is a COCO file or a folder holding ``annotations.json``; for a CT model, a
    folder's ``ct/annotations.json`` comes first."""
    path = Path(dataset)
    if path.is_dir():
        ct = path / "ct" / "annotations.json"
        path = ct if kind == "ct" and ct.is_file() else path / "annotations.json"
    if not path.is_file():
        raise UsageError(f"{dataset}: no COCO annotations file")
    return path


def file_hashes(coco_path: Path) -> dict[str, str]:
    """sha256 -> file, for every scan file a COCO file references."""
    coco = read_coco(coco_path)
    if not isinstance(coco.get("images"), list):
        raise DataSetError(f"{coco_path}: not a COCO data set (no list 'images')")
    out = {}
    for entry in coco["images"]:
        names = [entry["file_name"]]
        for files in entry.get("files", {}).values():
            names += [files] if isinstance(files, str) else list(files)
        for name in names:
            path = coco_path.parent / name
            if path.is_file():
                out[hashlib.sha256(path.read_bytes()).hexdigest()] = str(path)
    return out


def fingerprint(coco_path: Path) -> str:
    h = hashlib.sha256(coco_path.read_bytes())
    for digest in sorted(file_hashes(coco_path)):
        h.update(digest.encode())
    return h.hexdigest()


def freeze_test_set(reg: Path, test: Path, replace: bool) -> str:
    """The test set's fingerprint, checked against (or, first time, stored as) the frozen one."""
    digest = fingerprint(test)
    frozen_path = Path(reg) / "testset.json"
    if frozen_path.exists() and not replace:
        frozen = json.loads(frozen_path.read_text())
        if frozen["sha256"] != digest:
            raise UsageError(f"{test} is not the registry's frozen test set ({frozen['path']}, "
                             f"sha256 {frozen['sha256'][:12]}); comparisons across versions "
                             "need one test set (--new-test-set to start a new series)")
        return digest
    frozen_path.write_text(json.dumps({"path": str(test), "sha256": digest}) + "\n")
    return digest


def check_no_leak(train: list[Path], test: Path) -> None:
    test_files = file_hashes(test)
    for coco in train:
        shared = set(file_hashes(coco)) & set(test_files)
        if shared:
            example = test_files[sorted(shared)[0]]
            raise UsageError(f"{coco} shares {len(shared)} scan file(s) with the test set "
                             f"{test} (e.g. {example}); the test set must stay unseen")


def fine_tune(base_ckpt: Path, data: list[Path], out: Path, cfg: RetrainConfig,
              progress: bool = True) -> Path:
    """Continue training ``base_ckpt`` on ``data``; write and return the new checkpoint
    (``progress``: a bar per epoch on stderr, or a line a minute in a log)."""
    torch.manual_seed(cfg.seed)
    ckpt = checkpoint.load(base_ckpt)
    net, spec = checkpoint.build_model(ckpt)
    classes = list(ckpt["classes"])
    try:
        train_set, sampler = (_ct_training_data if spec.kind == "ct" else _training_data)(
            data, spec, classes, cfg.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    losses: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size,
                                             sampler=sampler, drop_last=True, collate_fn=collate)
        losses = train_one_epoch(net, loader, optimizer, scheduler, torch.device("cpu"), epoch,
                                 LossConfig(), progress=progress)
    prov = checkpoint.provenance({"retrain": cfg.__dict__, "base": ckpt["provenance"]},
                                 "concealscan retrain", [str(p) for p in data])
    checkpoint.save(out, model=net, spec=spec, classes=classes, name=ckpt["name"],
                    provenance=prov, metrics={k: float(v) for k, v in losses.items()})
    return out


def _training_data(data: list[Path], spec, classes: list[str], seed: int):
    """2-D scans, augmented as in training, every set drawn evenly."""
    sources = [CocoScans(p, spec.kind, classes) for p in data]
    for source in sources:
        source.say_left_out()
    train_set = TrainSet(sources, spec, build_augment(spec.kind, AugmentConfig(), seed),
                         seed=seed)
    return train_set, MixSampler([len(s) for s in sources], [1.0] * len(sources), seed)


def _ct_training_data(data: list[Path], spec, classes: list[str], seed: int):
    """CT slabs: every slab with a packet, and the recipes' share of those without, per set
    (a set of cleared volumes alone gives only the latter)."""
    from training.ct_data import CtDataConfig, CtSlabSet, CtVolumes, slab_sampler

    train_set = CtSlabSet([CtVolumes(p, classes, spec.ct_energies) for p in data], spec,
                          seed=seed)
    if not train_set.positives:
        raise ValueError(f"{', '.join(map(str, data))}: no CT slab with an object to learn "
                         "from (only cleared volumes)")
    return train_set, slab_sampler(train_set, [1.0] * len(data), CtDataConfig().negative_slabs,
                                   seed)


def _records(model: OnnxModel, test: Path, progress: bool) -> list:
    """The exported model's per-scan (CT: per-volume) records on ``test``, as it runs on the
    workstation (second look included)."""
    info = model.info
    try:
        if info.kind == "ct":
            from training.ct_data import CtVolumes, energies_read
            from training.ct_eval import evaluate_volumes

            volumes = CtVolumes(test, list(info.classes),
                                energies_read(info.input_spec, info.second_look))
            return evaluate_volumes(model.predict, volumes, info.input_spec, info.stride,
                                    progress=progress, second_look=info.second_look)
        data = CocoScans(test, info.kind, list(info.classes))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    data.say_left_out()
    return evaluate(model.predict, data, info.input_spec, info.stride, progress=progress,
                    second_look=info.second_look)


def _successor_look(base_model: Path, new_model: Path, look_data: list[Path],
                    cfg: RetrainConfig, progress: bool) -> dict | None:
    """{"entry": the new model's second look metadata entry, "how": a line saying where it came
    from}, or None: the base has none, or ``cfg.second_look`` is "drop"."""
    base = OnnxModel(base_model, threads=1).info
    if cfg.second_look == "refit":  # the base's floor and energies, if it has a second look
        floor = base.second_look.min_cnn_score if base.second_look else MIN_CNN_SCORE
        energies = base.second_look.energies if base.second_look else 1
        entry = fit_for_model(OnnxModel(new_model, threads=1), look_data, floor, progress,
                              energies)
        return {"entry": entry, "how": f"fitted on {', '.join(map(str, look_data))}"}
    if base.second_look is None or cfg.second_look == "drop":
        return None
    entry = base.second_look.to_dict()
    prov = {**entry.get("provenance", {}),
            "carried_over": f"from {base.name} {base.version} by concealscan retrain"}
    return {"entry": {**entry, "provenance": prov}, "how": f"carried over from {base.version}"}


def operating_point(model_path: Path, test: Path, target_pfa: float,
                    progress: bool = True) -> dict:
    """Threshold reaching ``target_pfa`` on ``test`` and the Pd there, for an exported model."""
    model = OnnxModel(model_path, threads=1)
    records = _records(model, test, progress)
    if all(r.positive for r in records) or not any(r.positive for r in records):
        raise UsageError(f"{test}: the test set needs scans with and without objects")
    point = alarm_threshold_for(records, target_pfa=target_pfa)
    return {"threshold": point.threshold, "pd": point.pd, "pfa": point.pfa,
            "target_pfa": target_pfa,
            "scans": len(records), "sha256": model.sha256}


def retrain(reg: Path, base: str, data: list[Path], test: Path, version: str, work: Path,
            cfg: RetrainConfig, new_test_set: bool = False, progress: bool = True) -> dict:
    """Fine-tune, compare, register; promote when Pd at the operating Pfa does not drop (and the
    new model reaches that Pfa at all: a saturated one does not)."""
    reg, work = Path(reg), Path(work)
    base = reg_read.current_version(reg) if base == "current" else reg_read.check_version(base)
    reg_read.read_entry(reg, base)  # "no model version" for a name the registry lacks
    base_dir = reg_read.version_dir(reg, base)
    if not (base_dir / "checkpoint.pt").is_file():
        raise UsageError(f"{reg}: version {base!r} has no checkpoint to fine-tune from")
    if not (base_dir / "model.onnx").is_file():  # found now, not after the fine-tuning
        raise UsageError(f"{reg}: version {base!r} has no model.onnx to compare against")
    saved = checkpoint.load(base_dir / "checkpoint.pt")
    kind, classes = saved["input_spec"]["kind"], list(saved["classes"])
    data = [annotations_path(d, kind) for d in data]
    test = annotations_path(test, kind)
    for path in (*data, test):
        check_readable(path, kind, classes)
    check_no_leak(data, test)
    if cfg.second_look == "refit" and kind not in KIND_FEATURES:
        raise UsageError(f"--second-look-data: a {kind} model has no second look (dual, gray "
                         f"and ct models do)")
    look_data = [annotations_path(d, kind) for d in cfg.second_look_data]
    for fit_set in look_data:  # unseen by the new CNN, and not the test set
        check_no_leak(data, fit_set)
        check_no_leak([fit_set], test)
    for path in look_data:
        check_readable(path, kind, classes)
    with _work_folder(work):
        return _retrain(reg, base, base_dir, data, test, look_data, version, work, cfg,
                        new_test_set, progress)


@contextmanager
def _work_folder(work: Path) -> Iterator[None]:
    """``work``, held for this run alone: a second retrain given the same folder (the same
    --version, or --work) is refused rather than overwrite the first one's model."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UsageError(f"{work}: another retrain is using this work folder") from exc
        yield


def check_readable(coco_path: Path, kind: str, classes: list[str]) -> None:
    """A `UsageError` naming the first scan or volume ``coco_path`` lists for a ``kind`` model
    that is missing or unreadable, before anything is trained or frozen (else the run stops
    part-way with a traceback from the data loader)."""
    from detector.errors import ScanError

    try:
        if kind == "ct":
            from training.ct_data import CtVolumes

            refs = [Path(ref.path) for _, ref, _ in CtVolumes(coco_path, classes).items]
        else:
            refs = [Path(f) for _, ref, _ in CocoScans(coco_path, kind, classes).items
                    for f in ref.files]
    except (ValueError, ScanError) as exc:
        raise UsageError(f"{coco_path}: {exc}") from exc
    missing = [p for p in refs if not p.exists()]
    if missing:
        raise UsageError(f"{coco_path}: {len(missing)} scan file(s) it lists are missing, "
                         f"e.g. {missing[0]}")


def _retrain(reg: Path, base: str, base_dir: Path, data: list[Path], test: Path,
             look_data: list[Path], version: str, work: Path, cfg: RetrainConfig,
             new_test_set: bool, progress: bool) -> dict:
    test_sha = freeze_test_set(reg, test, new_test_set)
    ckpt = fine_tune(base_dir / "checkpoint.pt", data, work / "checkpoint.pt", cfg, progress)
    info = export_onnx(ckpt, work / "model.onnx", version=version)
    look = _successor_look(base_dir / "model.onnx", work / "model.onnx", look_data, cfg,
                           progress)
    if look is not None:
        info = attach(work / "model.onnx", info, look["entry"])
    new = operating_point(work / "model.onnx", test, cfg.target_pfa, progress)
    how = f"target_pfa={cfg.target_pfa} on {test}"
    if look is None:
        checkpoint.set_alarm_threshold(ckpt, new["threshold"], how)
        export_onnx(ckpt, work / "model.onnx", version=version)  # now carrying its threshold
    else:  # the threshold is the rescored boxes'; the checkpoint (the CNN) keeps its own
        attach(work / "model.onnx", info, look["entry"], alarm_threshold=new["threshold"],
               threshold_source=how)
        new["second_look"] = look["how"]
    new["sha256"] = OnnxModel(work / "model.onnx", threads=1).sha256  # the file registered
    # Judged against the version current now: another retrain may have promoted one while
    # this one trained (then the comparison is made again, against it; the registry checks,
    # under its lock, that it is still current when this one is promoted).
    judged, old = base, operating_point(base_dir / "model.onnx", test, cfg.target_pfa, progress)
    for _ in range(3):
        now = reg_read.current_version(reg)
        if now == judged:
            break
        judged = now
        old = operating_point(reg_read.version_dir(reg, now) / "model.onnx", test,
                              cfg.target_pfa, progress)
    # Pd 0 is never promoted, even over a model as bad: at its threshold no packet of the
    # frozen test set alarms, and a workstation would show every parcel clear
    promoted = (math.isfinite(new["pd"]) and new["pd"] > 0 and new["pd"] >= old["pd"]
                and new["pfa"] <= cfg.target_pfa)
    metrics = {"test": {"path": str(test), "sha256": test_sha}, "old": old, "new": new,
               "promoted": promoted, "judged_against": judged}
    reason = (f"Pd {new['pd']:.3f} >= {old['pd']:.3f} of {judged} at Pfa <= {cfg.target_pfa}")
    entry = reg_write.add_version(reg, version, work / "model.onnx", ckpt, metrics=metrics,
                                  data=[str(d) for d in data], parent=base,
                                  note=f"retrained from {base} on {len(data)} data set(s)",
                                  promote_over=(judged, reason) if promoted else None)
    metrics = entry["metrics"]
    return {"version": version, "base": base, **metrics}
