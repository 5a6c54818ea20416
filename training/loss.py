"""Target assignment and loss for `training.model.ConcealNet` (kept out of the network).

A heat-map cell is positive for a box when its centre lies in the box's central region
(at least 1.5 cells, or 20 % of the box side, around the box centre); a cell claimed by several
boxes goes to the smallest. Classification: sigmoid focal loss over every cell; boxes: GIoU
at positive cells. Both are normalised by the number of positive cells. Optionally
(``decoy_weight`` > 0) an object-level term: binary cross-entropy on the top heat logit in the
central region of each target (1) and of each benign negative the targets carry as
"decoys" (0): the look-alikes, and with ``augment.hard_negatives`` the scene's other benign
solids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss


@dataclass
class LossConfig:
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_weight: float = 2.0
    centre_cells: float = 1.5  # minimum radius of the positive region, in cells
    centre_frac: float = 0.2  # radius as a fraction of the box side, when larger
    # Object-level term: the highest heat logit in each box's central region, pushed up for
    # a target and down for a benign look-alike (targets' "decoys", `augment.decoy_crops`).
    decoy_weight: float = 0.0


def cell_centres(size_hw: tuple[int, int], stride: int, device: torch.device) -> torch.Tensor:
    """``(h*w, 2)`` (x, y) centres of the heat-map cells in input pixels."""
    h, w = size_hw
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _central(centres: torch.Tensor, boxes_xyxy: torch.Tensor, stride: int,
             cfg: LossConfig) -> torch.Tensor:
    """``(cells, boxes)``: whether each cell centre lies in each box's central region."""
    x, y = centres[:, 0:1], centres[:, 1:2]  # (cells, 1)
    x1, y1, x2, y2 = boxes_xyxy.unbind(1)  # (boxes,)
    bx, by = (x1 + x2) / 2, (y1 + y2) / 2
    rx = torch.clamp(cfg.centre_frac * (x2 - x1), min=cfg.centre_cells * stride)
    ry = torch.clamp(cfg.centre_frac * (y2 - y1), min=cfg.centre_cells * stride)
    inside = (x > x1) & (x < x2) & (y > y1) & (y < y2)
    return inside & ((x - bx).abs() <= rx) & ((y - by).abs() <= ry)


def object_logits(logits_kc: torch.Tensor, centres: torch.Tensor, boxes_xyxy: torch.Tensor,
                  stride: int, cfg: LossConfig) -> torch.Tensor:
    """``(boxes, K)``: per box, the highest logit of each class over its central cells
    (-inf where a box covers no cell centre)."""
    mask = _central(centres, boxes_xyxy, stride, cfg).t()  # (boxes, cells)
    masked = logits_kc[None].expand(len(boxes_xyxy), -1, -1).masked_fill(
        ~mask[:, None, :], float("-inf"))  # (boxes, K, cells)
    return masked.amax(dim=2)


def assign(centres: torch.Tensor, boxes_xyxy: torch.Tensor, stride: int,
           cfg: LossConfig) -> torch.Tensor:
    """Index of the box each cell is positive for, or -1; shape ``(cells,)``."""
    if boxes_xyxy.numel() == 0:
        return torch.full((len(centres),), -1, dtype=torch.long, device=centres.device)
    x1, y1, x2, y2 = boxes_xyxy.unbind(1)  # (boxes,)
    area = ((x2 - x1) * (y2 - y1)).expand(len(centres), -1)
    area = torch.where(_central(centres, boxes_xyxy, stride, cfg), area,
                       torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=1)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def detection_loss(heat_logits: torch.Tensor, box_ltrb: torch.Tensor,
                   targets: list[dict[str, torch.Tensor]], stride: int,
                   cfg: LossConfig) -> dict[str, torch.Tensor]:
    """``{"cls", "box", "total"}`` for a batch; ``targets[i]`` has ``boxes`` xyxy and ``labels``."""
    n, k, h, w = heat_logits.shape
    centres = cell_centres((h, w), stride, heat_logits.device)
    cls_target = torch.zeros_like(heat_logits)
    pred_boxes, target_boxes = [], []
    for i, target in enumerate(targets):
        boxes, labels = target["boxes"].float(), target["labels"].long()
        owner = assign(centres, boxes, stride, cfg)
        pos = torch.nonzero(owner >= 0).squeeze(1)
        if len(pos) == 0:
            continue
        cls_target[i].view(k, -1)[labels[owner[pos]], pos] = 1.0
        ltrb = box_ltrb[i].view(4, -1)[:, pos].t()
        c = centres[pos]
        pred_boxes.append(torch.cat([c - ltrb[:, :2], c + ltrb[:, 2:]], dim=1))
        target_boxes.append(boxes[owner[pos]])
    obj = _object_term(heat_logits, targets, centres, stride, cfg) if cfg.decoy_weight else None
    num_pos = max(sum(len(b) for b in pred_boxes), 1)
    cls = sigmoid_focal_loss(heat_logits.float(), cls_target, alpha=cfg.focal_alpha,
                             gamma=cfg.focal_gamma, reduction="sum") / num_pos
    if pred_boxes:
        box = generalized_box_iou_loss(torch.cat(pred_boxes).float(), torch.cat(target_boxes),
                                       reduction="sum") / num_pos
    else:
        box = box_ltrb.sum() * 0.0  # keeps every parameter in the graph (DDP needs that)
    total = cls + cfg.box_weight * box
    if obj is None:
        return {"cls": cls, "box": box, "total": total}
    return {"cls": cls, "box": box, "obj": obj, "total": total + cfg.decoy_weight * obj}


def _object_term(heat_logits: torch.Tensor, targets: list[dict[str, torch.Tensor]],
                 centres: torch.Tensor, stride: int, cfg: LossConfig) -> torch.Tensor:
    """Mean BCE of `object_logits`: 1 for each target (its class), 0 for each decoy
    (look-alike or other benign solid; every class); boxes that cover no cell centre are
    left out."""
    k = heat_logits.shape[1]
    logits, wanted = [], []
    for i, target in enumerate(targets):
        flat = heat_logits[i].float().view(k, -1)
        boxes = target["boxes"].float()
        if len(boxes):
            per_box = object_logits(flat, centres, boxes, stride, cfg)
            logits.append(per_box.gather(1, target["labels"].long()[:, None]).squeeze(1))
            wanted.append(torch.ones(len(boxes), device=flat.device))
        decoys = target.get("decoys")
        if decoys is not None and len(decoys):
            per_box = object_logits(flat, centres, decoys.float(), stride, cfg)
            logits.append(per_box.reshape(-1))
            wanted.append(torch.zeros(per_box.numel(), device=flat.device))
    if logits:
        logits, wanted = torch.cat(logits), torch.cat(wanted)
        ok = torch.isfinite(logits)
        if ok.any():
            return torch.nn.functional.binary_cross_entropy_with_logits(logits[ok], wanted[ok])
    return heat_logits.sum() * 0.0  # no box in the batch: keeps the graph whole (DDP)
