"""The three presets at 512x1024 and 1024x2048, beside the paper's Table 3 (labelled as the paper's).

    python -m bench.model_profile      # writes bench/model_profile.md and .json
"""
from __future__ import annotations

import sys
from pathlib import Path

from bench.machine import describe, markdown_header, write_results
from bisegunet_training.profile import profile

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(512, 1024), (1024, 2048)]
# The paper's Table 3 (Cityscapes), quoted, not measured here.
PAPER_TABLE3 = {
    (512, 1024): {"FP32": (194.7, 7.8, 18.5), "Binarized": (10.4, 1.2, 4.3)},
    (1024, 2048): {"FP32": (390.3, 11.5, 23.4), "Binarized": (27.5, 2.3, 6.7)},
}


def main() -> int:
    results = [profile(preset, h, w) for preset in ("tiny", "small", "paper") for h, w in SIZES]
    lines = markdown_header("Model profile: our presets and the paper's Table 3", "python -m bench.model_profile",
                            describe())
    lines += ["Ours: counted by `bisegunet-profile` (training/profile.py) on the meta device. Real FLOPs = 2 x "
              "multiply-accumulates executed, binary convolutions counted as ordinary ones; paper-convention "
              "OPs = BOPs/64 + float MACs (Bi-Real Net's convention, which assumes 1-bit activations we do "
              "not have). Memory: parameters as FP32, and packed (1 bit per binary weight, FP32 alphas and "
              "float layers).", "",
              "| model | input | params (M) | binary params (M) | real GFLOPs | paper-convention GOPs | "
              "weights FP32 (MB) | weights packed (MB) | ratio | activation peak est. (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p, m = r["parameters"], r["weight_memory_mb"]
        lines.append(f"| ours: {r['model']} | {r['input'][0]}x{r['input'][1]} | {p['total'] / 1e6:.2f} | "
                     f"{p['binary'] / 1e6:.2f} | {r['real_gflops']:.1f} | {r['paper_convention_gops']:.2f} | "
                     f"{m['fp32']:.2f} | {m['packed_1bit']:.2f} | {m['ratio']:.1f}x | "
                     f"{r['activation_memory_mb']['peak_estimate_batch1']:.0f} |")
    lines += ["", "**The paper's Table 3** (quoted; its FLOPs column is labelled FLOPs (G), memory (MB), "
              "parameters (M); not reproduced here):", "",
              "| paper model | input | FLOPs (G) | memory (MB) | params (M) |", "|---|---|---|---|---|"]
    for (h, w), rows in PAPER_TABLE3.items():
        for precision, (flops, memory, params) in rows.items():
            lines.append(f"| paper: BiSegUNet {precision} | {h}x{w} | {flops} | {memory} | {params} |")
    lines += ["", "Table 1's widths (our `paper` preset) give far more parameters than the 4.3 M / 6.7 M the "
              "paper reports; `small` is sized to the paper's 4.3 M (docs/model.md).", ""]
    print(write_results(ROOT / "bench/model_profile", results, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
