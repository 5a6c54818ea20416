"""The pure detection network: a compact anchor-free CNN (FCOS-style, one stride-4 level).

``forward`` returns ``(heat_logits, box_ltrb)``: per-class logits of the centre heat map and
the distances (input pixels) from each cell centre to the four box edges. Loss and target
assignment live in `training.loss`; decoding lives in `detector.postprocess`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    in_channels: int = 3
    num_classes: int = 1
    widths: tuple[int, ...] = (24, 32, 64, 96, 128)  # strides 2, 4, 8, 16, 32
    blocks: tuple[int, ...] = (1, 1, 2, 2, 1)  # residual blocks per stage
    neck_width: int = 48
    stride: int = 4  # output stride of the heat map
    prior_prob: float = 0.01  # initial heat-map probability (focal-loss prior)
    init_box_px: float = 24.0  # initial half-size of predicted boxes

    def __post_init__(self) -> None:
        self.widths, self.blocks = tuple(self.widths), tuple(self.blocks)
        if len(self.widths) != 5 or len(self.blocks) != 5:
            raise ValueError(f"widths/blocks: expected 5 stages, got {self.widths}, {self.blocks}")
        if self.stride != 4:
            raise ValueError(f"stride: only 4 is built, got {self.stride}")
        if self.in_channels < 1 or self.num_classes < 1:
            raise ValueError(f"in_channels/num_classes must be >= 1, got "
                             f"{self.in_channels}/{self.num_classes}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        return d


def conv_bn(c_in: int, c_out: int, k: int = 3, s: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SeparableBlock(nn.Module):
    """Residual depthwise 5x5 + pointwise block (MobileNet-like, cheap and wide-field)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = conv_bn(c, c, 5, groups=c, act=False)
        self.pw = conv_bn(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(self.dw(x))


class Backbone(nn.Module):
    """Five stride-2 stages; returns the stride 4, 8, 16 and 32 features."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c_prev = cfg.in_channels
        self.stages = nn.ModuleList()
        for width, n in zip(cfg.widths, cfg.blocks, strict=True):
            layers = [conv_bn(c_prev, width, 3, 2)]
            layers += [SeparableBlock(width) for _ in range(n)]
            self.stages.append(nn.Sequential(*layers))
            c_prev = width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[1:]


class Neck(nn.Module):
    """Top-down FPN that merges strides 32..4 into one stride-4 map."""

    def __init__(self, widths: tuple[int, ...], c: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList([conv_bn(w, c, 1) for w in widths])
        self.smooth = nn.ModuleList([
            nn.Sequential(conv_bn(c, c, 3, groups=c), conv_bn(c, c, 1)) for _ in widths[:-1]
        ])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.lateral[i](feats[i])
            x = F.interpolate(x, size=lateral.shape[-2:], mode="nearest") + lateral
            x = self.smooth[i](x)
        return x


class Head(nn.Module):
    """Separate class and box branches, each a separable 3x3 conv then a 1x1 predictor."""

    def __init__(self, c: int, num_classes: int, prior_prob: float, init_box: float) -> None:
        super().__init__()
        self.cls_tower = nn.Sequential(conv_bn(c, c, 3, groups=c), conv_bn(c, c, 1))
        self.box_tower = nn.Sequential(conv_bn(c, c, 3, groups=c), conv_bn(c, c, 1))
        self.cls_out = nn.Conv2d(c, num_classes, 1)
        self.box_out = nn.Conv2d(c, 4, 1)
        nn.init.normal_(self.cls_out.weight, std=0.01)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.normal_(self.box_out.weight, std=0.01)
        nn.init.constant_(self.box_out.bias, math.log(init_box))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.cls_out(self.cls_tower(x))
        # exp keeps distances positive; the clamp keeps early training from overflowing.
        box_ltrb = torch.exp(self.box_out(self.box_tower(x)).clamp(max=8.0))
        return logits, box_ltrb


class ConcealNet(nn.Module):
    """Backbone + FPN neck + head; input ``(N, C, H, W)`` float, any H and W."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.neck = Neck(cfg.widths[1:], cfg.neck_width)
        self.head = Head(cfg.neck_width, cfg.num_classes, cfg.prior_prob, cfg.init_box_px)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(heat_logits (N,K,H/4,W/4), box_ltrb (N,4,H/4,W/4) in input pixels)``."""
        return self.head(self.neck(self.backbone(x)))

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the exported graph computes: heat-map probabilities and box distances."""
        logits, box_ltrb = self(x)
        return torch.sigmoid(logits), box_ltrb


def count_gflops(model: nn.Module, size_hw: tuple[int, int] = (512, 512)) -> float:
    """Forward GFLOPs (2 x multiply-adds) for one image of ``size_hw``."""
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters())
    x = torch.zeros(1, model.cfg.in_channels, *size_hw, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 1e9
