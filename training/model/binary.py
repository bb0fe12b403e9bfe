"""Weight binarization: sign(W) times a learned positive scale per output channel.

The sign has zero gradient almost everywhere, so its backward pass is replaced by an estimator
chosen by name (larq's quantizer style: one small function each). Activations stay real: the
saving is 1-bit weights (storage). TensorRT and ONNX Runtime have no 1-bit convolution, so at run
time these layers execute as ordinary FP16/INT8/FP32 convolutions with +-alpha weights.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def _sign(w: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, so every weight is exactly +1 or -1."""
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


def ste(w: torch.Tensor) -> torch.Tensor:
    """Clipped straight-through estimator: forward sign, backward identity where |w| <= 1."""
    surrogate = w.clamp(-1.0, 1.0)
    return _sign(w).detach() + (surrogate - surrogate.detach())  # exactly +-1 forward: x - x == 0


def approx_sign(w: torch.Tensor) -> torch.Tensor:
    """Bi-Real Net's estimator: forward sign, backward 2 - 2|w| for |w| < 1 (piecewise quadratic)."""
    c = w.clamp(-1.0, 1.0)
    surrogate = 2 * c - c * c.abs()
    return _sign(w).detach() + (surrogate - surrogate.detach())  # exactly +-1 forward: x - x == 0


ESTIMATORS = {"ste": ste, "approx_sign": approx_sign}


class BinaryConv2d(nn.Conv2d):
    """Conv2d whose effective weight is sign(W) * alpha_c when `binarized`, the latent W otherwise.

    alpha is stored as log(alpha) so it stays positive. It is set to the channel's mean |W| the
    first time the layer is binarized (not at construction: phase 1 changes W a lot), and learned
    from then on. `standardize` applies IR-Net's per-channel zero-mean, unit-std weights first.
    """

    def __init__(self, *args, estimator: str = "approx_sign", standardize: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.estimator = estimator
        self.standardize = standardize
        self.log_alpha = nn.Parameter(torch.zeros(self.out_channels))
        self.register_buffer("alpha_initialized", torch.tensor(False))
        self._binarized = False

    @property
    def binarized(self) -> bool:
        return self._binarized

    @binarized.setter
    def binarized(self, on: bool) -> None:
        if on and not bool(self.alpha_initialized):
            with torch.no_grad():
                self.log_alpha.copy_(self._latent().abs().mean(dim=(1, 2, 3)).clamp_min(1e-8).log())
                self.alpha_initialized.fill_(True)
        self._binarized = bool(on)

    def _latent(self) -> torch.Tensor:
        w = self.weight
        if self.standardize:
            w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return w

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def binary_weight(self) -> torch.Tensor:
        """The effective binary weight: exactly +alpha_c or -alpha_c in output channel c.

        Computed outside autocast, in the weights' fp32, so mixed precision never changes sign or alpha
        (the convolution then casts the finished +-alpha_c like any weight)."""
        device = self.weight.device.type      # autocast knows no "meta" device (bisegunet-profile counts there)
        with torch.autocast(device, enabled=False) if device in ("cpu", "cuda") else contextlib.nullcontext():
            return ESTIMATORS[self.estimator](self._latent().float()) * self.alpha.float().view(-1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.binary_weight() if self._binarized else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", estimator={self.estimator}, binarized={self._binarized}"
