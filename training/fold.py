"""An inference copy of a trained model: binary weights folded to sign * alpha, BatchNorm folded
into the convolution before it. What remains is a plain float network, as TensorRT and ONNX
Runtime run it; a folded binary conv still has exactly two weight values per output channel."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .model import BinaryConv2d


def _plain_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=bias is not None)
    out.weight.data.copy_(weight)
    if bias is not None:
        out.bias.data.copy_(bias)
    return out


def _effective_weight(conv: nn.Conv2d) -> torch.Tensor:
    if isinstance(conv, BinaryConv2d) and conv.binarized:
        return conv.binary_weight()
    return conv.weight


@torch.no_grad()
def fold_for_inference(model: nn.Module) -> nn.Module:
    """A copy in eval mode with every BinaryConv2d replaced by nn.Conv2d and conv+BN pairs merged."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (name, child), (next_name, following) in zip(children, children[1:] + [(None, None)]):
            if not isinstance(child, nn.Conv2d):
                continue
            weight, bias = _effective_weight(child), child.bias
            if isinstance(following, nn.BatchNorm2d):  # y = gamma (conv(x) - mean) / sqrt(var + eps) + beta
                scale = following.weight / torch.sqrt(following.running_var + following.eps)
                weight = weight * scale.view(-1, 1, 1, 1)
                bias = following.bias - following.running_mean * scale + (bias * scale if bias is not None else 0)
                setattr(parent, next_name, nn.Identity())
            setattr(parent, name, _plain_conv(child, weight, bias))
    return model
