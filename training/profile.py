"""`bisegunet-profile`: parameters, FLOPs, weight memory and activation memory of a model config.

    bisegunet-profile --model small --size 512 1024 [--json out.json]

Both operation counts are in FLOPs = 2 x multiply-adds (MACs). Real: every MAC the hardware
executes (binary convolutions count as ordinary ones: no CPU or GPU here runs 1-bit kernels).
Binary-discounted: binary MACs / 64 + float MACs, then x 2; the /64 is Bi-Real Net's and
ReActNet's convention, chosen by us (the paper states no convention for its FLOPs column), and it
assumes XNOR/popcount kernels with binary activations that this network does not have. Counted on the
`meta` device, so even the paper preset at 1024x2048 costs no real compute. Element-wise work
(activations, BatchNorm, SE scaling, pooling, upsampling) is not counted, for any model.

`--model torchvision:<architecture>` profiles torchvision's segmentation networks the same way
(their only MACs are convolutions: no Linear or attention layers); the activation memory estimate
follows BiSegUNet's skip connections and is given for BiSegUNet only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

from bisegunet_ros.cli_args import PIXELS

from .model import BinaryConv2d, BiSegUNet, ModelConfig, TorchvisionConfig, build_model, load_model_config
from .model.bottleneck import PositionAttention


def count(model: nn.Module, height: int, width: int) -> dict:
    """MACs of convolutions (binary and float) and attention matmuls, and activation sizes, batch 1."""
    macs = {"binary": 0, "float": 0}
    outputs: list[tuple[str, int]] = []

    def conv_hook(module: nn.Conv2d, inputs, output) -> None:
        k = module.kernel_size[0] * module.kernel_size[1]
        m = output.numel() * (module.in_channels // module.groups) * k
        binary = isinstance(module, BinaryConv2d)
        macs["binary" if binary else "float"] += m

    def attention_hook(module: PositionAttention, inputs, output) -> None:
        n, c, h, w = inputs[0].shape
        keys = (h // module.kv_pool) * (w // module.kv_pool)
        macs["float"] += n * h * w * keys * (module.key_channels + c)   # Q K^T and A V
        outputs.append(("attention matrix", n * h * w * keys))

    def size_hook(name: str):
        return lambda module, inputs, output: outputs.append((name, output.numel()))

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(attention_hook) for m in model.modules() if isinstance(m, PositionAttention)]
    if isinstance(model, BiSegUNet):   # activation sizes along its skip connections
        handles += [m.register_forward_hook(size_hook(n)) for n, m in model.named_children()]
        handles += [m.register_forward_hook(size_hook(f"encoder.{i}")) for i, m in enumerate(model.encoder)]
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width, device=next(model.parameters()).device))
    for h in handles:
        h.remove()
    return {"macs": macs, "activations": outputs}


def profile(model_cfg: str | ModelConfig | TorchvisionConfig, height: int, width: int) -> dict:
    """Counts for a preset name, a YAML path or a config (e.g. a checkpoint's, or one with overrides)."""
    cfg = model_cfg if isinstance(model_cfg, (ModelConfig, TorchvisionConfig)) else load_model_config(model_cfg)
    with torch.device("meta"):
        model = build_model(cfg).eval()
    for m in model.modules():
        if isinstance(m, BinaryConv2d):
            m._binarized = True     # count the binary network (alpha init needs real weights; not needed here)
    binary_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, BinaryConv2d))
    alphas = sum(m.log_alpha.numel() for m in model.modules() if isinstance(m, BinaryConv2d))
    total = sum(p.numel() for p in model.parameters())
    float_params = total - binary_weights - alphas
    counted = count(model, height, width)
    macs = counted["macs"]
    fp32_bytes = total * 4
    packed_bytes = binary_weights / 8 + (alphas + float_params) * 4
    return {
        "model": cfg.name, "input": [height, width],
        "parameters": {"total": total, "binary": binary_weights, "float": total - binary_weights},
        "real_gflops": 2 * (macs["binary"] + macs["float"]) / 1e9,
        "binary_discounted_gflops": 2 * (macs["binary"] / 64 + macs["float"]) / 1e9,
        "macs": {"binary_g": macs["binary"] / 1e9, "float_g": macs["float"] / 1e9},
        "weight_memory_mb": {"fp32": fp32_bytes / 1e6, "packed_1bit": packed_bytes / 1e6,
                             "ratio": fp32_bytes / packed_bytes},
        "activation_memory_mb": activation_memory(dict(counted["activations"])),
    }


def activation_memory(acts: dict[str, int]) -> dict | None:
    """MB of BiSegUNet's largest tensor, skips and attention matrix (None for other models)."""
    if not acts:
        return None
    skips = sum(acts.get(f"encoder.{i}", 0) for i in range(4)) + acts.get("stem", 0)
    largest = max(acts.values())
    return {"largest_tensor": largest * 4 / 1e6, "skips_held_for_decoder": skips * 4 / 1e6,
            "attention_matrix": acts.get("attention matrix", 0) * 4 / 1e6,
            "peak_estimate_batch1": (skips + 2 * largest) * 4 / 1e6}


def table(result: dict) -> str:
    p, w, a = result["parameters"], result["weight_memory_mb"], result["activation_memory_mb"]
    rows = [("parameters (total / binary / float)", f"{p['total'] / 1e6:.2f} M / {p['binary'] / 1e6:.2f} M / "
             f"{p['float'] / 1e6:.2f} M"),
            ("real FLOPs (2 x MACs executed)", f"{result['real_gflops']:.2f} G"),
            ("binary-discounted FLOPs (2 x (binary MACs/64 + float MACs))",
             f"{result['binary_discounted_gflops']:.2f} G"),
            ("weights FP32 / 1-bit payload (no file: bench/model_profile)",
             f"{w['fp32']:.2f} MB / {w['packed_1bit']:.2f} MB")]
    if a is not None:
        rows += [("activation peak estimate, batch 1 (FP32)", f"{a['peak_estimate_batch1']:.1f} MB"),
                 ("  of which attention matrix", f"{a['attention_matrix']:.1f} MB")]
    width = max(len(r[0]) for r in rows)
    head = f"{result['model']} at {result['input'][0]}x{result['input'][1]}"
    return "\n".join([head, *(f"{k:<{width}}  {v}" for k, v in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small", help="preset name (tiny, small, paper, fast) or YAML path")
    parser.add_argument("--size", type=PIXELS, nargs=2, default=(512, 1024), metavar=("H", "W"),
                        help="network input height and width in pixels")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        result = profile(args.model, *args.size)
    except (FileNotFoundError, ValueError) as exc:     # unknown preset, bad YAML key or value
        print(f"bisegunet-profile: error: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
