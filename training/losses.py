"""The paper's objective (eq. 18-20, 24-26): label-smoothed cross-entropy + multi-class Dice,
plus the binary weight regularisation lambda3 * sum ||W - sign(W)||_1 over binary layers."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bisegunet_ros.classes import IGNORE_INDEX

REDUCTIONS = ("mean", "sum")   # of eq. 24 over the binary weights: this project's, the paper's


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
              smooth: float = 1.0) -> torch.Tensor:
    """1 - Dice per class on softmax probabilities (eq. 19), averaged over classes; ignored pixels
    count for nothing. `smooth` keeps classes absent from a batch at a loss near 0, not NaN."""
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(max=num_classes - 1) * valid.squeeze(1), num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return (1 - (2 * intersection + smooth) / (total + smooth)).mean()


def binary_regularization(weights: list[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """||W - sign(W)||_1 (eq. 24) over the latent weights of binary layers.

    "sum" is eq. 24 as written (the paper's recipe): over 0.5 M weights of |W| ~ 0.05, lambda3 =
    1e-4 makes this term ~50, ten times the segmentation loss, pulling weights towards +-1 where
    the sign estimators pass no gradient. "mean", this project's variant, divides by the number of
    weights: lambda3 x L_bin is then ~1e-4, a per-weight gradient ~1e-10 against ~3e-5 from the
    task loss, so the regulariser is effectively off. Both are measured (docs/training.md).
    """
    if not weights:
        return torch.zeros(())
    total = sum((w - torch.where(w >= 0, 1.0, -1.0).detach()).abs().sum() for w in weights)
    return total / sum(w.numel() for w in weights) if reduction == "mean" else total


@dataclass
class SegmentationLoss:
    """lambda1 * CE(label smoothing eps) + lambda2 * Dice + lambda3 * binary regularisation (eq. 25)."""

    ce_weight: float = 1.0           # lambda1
    dice_weight: float = 1.0         # lambda2
    binary_weight: float = 1e-4      # lambda3
    label_smoothing: float = 0.1     # epsilon of eq. 26
    binary_reduction: str = "mean"   # mean (this project's) | sum (eq. 24 as written); see binary_regularization
    ignore_index: int = IGNORE_INDEX
    class_weights: list[float] | None = None   # CE weight per class (class_weights.py); None = equal

    def __post_init__(self) -> None:
        if self.binary_reduction not in REDUCTIONS:
            raise ValueError(f"loss.binary_reduction must be one of {REDUCTIONS}, got {self.binary_reduction!r}")

    def __call__(self, logits: torch.Tensor, target: torch.Tensor,
                 binary_weights: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts (for logging)."""
        weight = None if self.class_weights is None else logits.new_tensor(self.class_weights)
        ce = F.cross_entropy(logits, target, weight, ignore_index=self.ignore_index,
                             label_smoothing=self.label_smoothing)
        dice = dice_loss(logits, target, self.ignore_index)
        reg = binary_regularization(binary_weights, self.binary_reduction).to(logits.device)
        total = self.ce_weight * ce + self.dice_weight * dice + self.binary_weight * reg
        return total, {"ce": ce.item(), "dice": dice.item(), "binary_reg": reg.item(), "total": total.item()}
