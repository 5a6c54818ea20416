"""Target assignment and loss for `training.model.ConcealNet` (kept out of the network).

A heat-map cell is positive for a box when its centre lies in the box's central region
(at least 1.5 cells, or 20 % of the box side, around the box centre); a cell claimed by several
boxes goes to the smallest. Classification: sigmoid focal loss over every cell; boxes: GIoU
at positive cells. Both are normalised by the number of positive cells.
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


def cell_centres(size_hw: tuple[int, int], stride: int, device: torch.device) -> torch.Tensor:
    """``(h*w, 2)`` (x, y) centres of the heat-map cells in input pixels."""
    h, w = size_hw
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def assign(centres: torch.Tensor, boxes_xyxy: torch.Tensor, stride: int,
           cfg: LossConfig) -> torch.Tensor:
    """Index of the box each cell is positive for, or -1; shape ``(cells,)``."""
    if boxes_xyxy.numel() == 0:
        return torch.full((len(centres),), -1, dtype=torch.long, device=centres.device)
    x, y = centres[:, 0:1], centres[:, 1:2]  # (cells, 1)
    x1, y1, x2, y2 = boxes_xyxy.unbind(1)  # (boxes,)
    bx, by = (x1 + x2) / 2, (y1 + y2) / 2
    rx = torch.clamp(cfg.centre_frac * (x2 - x1), min=cfg.centre_cells * stride)
    ry = torch.clamp(cfg.centre_frac * (y2 - y1), min=cfg.centre_cells * stride)
    inside = (x > x1) & (x < x2) & (y > y1) & (y < y2)
    central = ((x - bx).abs() <= rx) & ((y - by).abs() <= ry)
    area = ((x2 - x1) * (y2 - y1)).expand(len(centres), -1)
    area = torch.where(inside & central, area, torch.full_like(area, float("inf")))
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
    num_pos = max(sum(len(b) for b in pred_boxes), 1)
    cls = sigmoid_focal_loss(heat_logits.float(), cls_target, alpha=cfg.focal_alpha,
                             gamma=cfg.focal_gamma, reduction="sum") / num_pos
    if pred_boxes:
        box = generalized_box_iou_loss(torch.cat(pred_boxes).float(), torch.cat(target_boxes),
                                       reduction="sum") / num_pos
    else:
        box = box_ltrb.sum() * 0.0  # keeps every parameter in the graph (DDP needs that)
    return {"cls": cls, "box": box, "total": cls + cfg.box_weight * box}
