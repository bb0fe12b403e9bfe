"""Mixed precision and memory layout of a training step: the one place `amp` and `channels_last` act.

bf16 autocast needs no loss scaling; fp16 does (torch.amp.GradScaler, whose state goes into the
checkpoint). channels_last stores activations NHWC, which the GPU's tensor-core convolutions want.
Binarization is unaffected: BinaryConv2d computes sign and alpha outside autocast, in fp32.
"""
from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast, loss scaling and memory format for one device, from the `amp` and `channels_last` keys."""

    def __init__(self, amp: str, channels_last: bool, device: torch.device):
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        self.amp, self.dtype, self.device = amp, AMP_DTYPES[amp], torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True    # fixed input sizes: let cuDNN pick the fastest kernels

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def model(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.device, memory_format=self.memory_format)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format, non_blocking=True)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """backward and optimizer step; with fp16 the loss is scaled and inf/nan steps are skipped."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.scaler.load_state_dict(state)
