"""The three training phases of the paper (section IV, Table 10: 50 / 100 / 30 of 180 epochs),
scaled to any epoch count, and the learning rate that restarts at each phase boundary.

Phase 1 trains in float. Phase 2 switches binary layers on a few at a time, in a chosen order,
so that every one is binary on the last epoch of phase 2. Phase 3 trains fully binary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PAPER_PHASES = (50, 100, 30)   # Table 10, epochs of 180
ORDERS = ("deepest_first", "shallowest_first")


@dataclass(frozen=True)
class PhaseSchedule:
    epochs: int
    phase_fractions: tuple[float, float, float] = tuple(p / sum(PAPER_PHASES) for p in PAPER_PHASES)
    min_lr_ratio: float = 0.01     # cosine annealing floor, as a fraction of the base rate

    def __post_init__(self) -> None:
        if self.epochs < 3:
            raise ValueError(f"epochs must be at least 3 (one per phase), got {self.epochs}")
        if abs(sum(self.phase_fractions) - 1) > 1e-6 or min(self.phase_fractions) < 0:
            raise ValueError(f"phase_fractions must be >= 0 and sum to 1, got {self.phase_fractions}")

    @property
    def boundaries(self) -> tuple[int, int]:
        """First epoch of phase 2 and of phase 3 (0-based); each phase gets at least one epoch."""
        p1 = min(max(1, round(self.epochs * self.phase_fractions[0])), self.epochs - 2)
        p2 = min(max(p1 + 1, round(self.epochs * (self.phase_fractions[0] + self.phase_fractions[1]))),
                 self.epochs - 1)
        return p1, p2

    def phase(self, epoch: int) -> int:
        p1, p2 = self.boundaries
        return 1 if epoch < p1 else 2 if epoch < p2 else 3

    def binarized_count(self, epoch: int, layers: int) -> int:
        """How many of `layers` binary layers run binarized during `epoch`."""
        p1, p2 = self.boundaries
        if epoch < p1:
            return 0
        if epoch >= p2:
            return layers
        return math.ceil(layers * (epoch - p1 + 1) / (p2 - p1))

    def lr_factor(self, epoch_progress: float) -> float:
        """Cosine from 1 to min_lr_ratio within each phase, restarting at its boundaries (SGDR)."""
        p1, p2 = self.boundaries
        start, end = (0, p1) if epoch_progress < p1 else (p1, p2) if epoch_progress < p2 else (p2, self.epochs)
        t = min(max((epoch_progress - start) / (end - start), 0.0), 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def binarization_order(names: list[str], order: str) -> list[str]:
    """Layer names (given shallowest first) in the order they are switched to binary."""
    if order not in ORDERS:
        raise ValueError(f"binarization order must be one of {ORDERS}, got {order!r}")
    return list(reversed(names)) if order == "deepest_first" else list(names)


@dataclass(frozen=True)
class BinaryOnlySchedule:
    """`phases: binary_only`, for fine-tuning a model that is already binarized: every binary layer is
    binary from the first epoch (phase 3 throughout), one cosine learning rate cycle over the run."""

    epochs: int
    min_lr_ratio: float = 0.01

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")

    @property
    def boundaries(self) -> tuple[int, int]:
        return 0, 0

    def phase(self, epoch: int) -> int:
        return 3

    def binarized_count(self, epoch: int, layers: int) -> int:
        return layers

    def lr_factor(self, epoch_progress: float) -> float:
        t = min(max(epoch_progress / self.epochs, 0.0), 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


PHASES = ("paper", "binary_only")


def make_schedule(phases: str, epochs: int, phase_fractions: tuple[float, float, float],
                  min_lr_ratio: float) -> PhaseSchedule | BinaryOnlySchedule:
    """The schedule `phases` names: the paper's three phases, or binary from the start."""
    if phases not in PHASES:
        raise ValueError(f"phases must be one of {PHASES}, got {phases!r}")
    if phases == "binary_only":
        return BinaryOnlySchedule(epochs, min_lr_ratio)
    return PhaseSchedule(epochs, phase_fractions, min_lr_ratio)
