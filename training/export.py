"""`bisegunet-export`: a checkpoint to an ONNX model the runtime can run from the file alone.

    bisegunet-export --checkpoint runs/NAME/best.pt --out models/NAME.onnx [--dynamic-batch]
        [--height H --width W] [--packed models/NAME.packed.bin]

Opset 17; binary weights folded to sign * alpha and BatchNorm folded (fold.py); fixed H x W
(the training size unless given) and optionally a dynamic batch dimension, so several cameras
share one call. metadata_props carry classes, palette, input size, mean/std, channel order,
preset, binarized flag and the training command and commit (bisegunet_ros/model_info.py).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from bisegunet_ros.classes import CITYSCAPES, ClassTable
from bisegunet_ros.model_info import ModelInfo

from .checkpoint import load_checkpoint
from .fold import fold_for_inference
from .model import TORCHVISION_PREFIX, binary_layers, build_model, model_config_from_dict

log = logging.getLogger(__name__)
OPSET = 17
TENSORRT_OPS_FILE = Path(__file__).with_name("tensorrt_onnx_ops.txt")


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The trained network in eval mode, with its binarization state, and the checkpoint."""
    state = load_checkpoint(path)
    model = build_model(model_config_from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    layers = dict(binary_layers(model))
    for name, on in state["binarized"].items():
        layers[name].binarized = on
    return model.eval(), state


def class_table(names: list[str]) -> ClassTable:
    """Cityscapes colours for Cityscapes names, evenly spread hues for anything else."""
    palette = dict(zip(CITYSCAPES.names, CITYSCAPES.palette))
    rng = np.random.default_rng(0)
    return ClassTable(tuple(names), tuple(palette.get(n, tuple(int(v) for v in rng.integers(0, 256, 3)))
                                          for n in names))


def model_info(state: dict, height: int, width: int, binarized: bool, dynamic_batch: bool) -> ModelInfo:
    data, cfg = state["data"], state["model_config"]
    torchvision = cfg["name"].startswith(TORCHVISION_PREFIX)
    name = cfg["name"].replace(":", "_") if torchvision else f"bisegunet_{cfg['name']}"
    return ModelInfo(classes=class_table(data["class_names"]), input_height=height, input_width=width,
                     mean=tuple(data["mean"]), std=tuple(data["std"]), channel_order="rgb",
                     name=name, preset=cfg["name"], binarized=binarized,
                     training_command=state.get("command", ""), commit=state.get("commit", ""),
                     extra={"precision": "fp32", "dynamic_batch": dynamic_batch, "opset": OPSET})


def tensorrt_ops() -> set[str]:
    return {line.strip() for line in TENSORRT_OPS_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def unsupported_by_tensorrt(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node} - tensorrt_ops()


def export_onnx(model: torch.nn.Module, out: str | Path, height: int, width: int, info: ModelInfo,
                dynamic_batch: bool = False, tensorrt_check: bool = True) -> onnx.ModelProto:
    """Fold, export, attach metadata, check; returns the saved model.

    `tensorrt_check=False` skips the TensorRT op list (training/tensorrt_onnx_ops.txt, TensorRT 8.4's
    matrix) for graphs that only ONNX Runtime runs, such as torchvision's MobileNetV3 (HardSwish).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    folded = fold_for_inference(model)
    dummy = torch.zeros(1, 3, height, width)
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(folded, (dummy,), str(out), dynamo=False, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load(str(out))
    onnx.helper.set_model_props(proto, info.to_metadata())
    onnx.checker.check_model(proto, full_check=True)
    missing = unsupported_by_tensorrt(proto) if tensorrt_check else set()
    if missing:
        raise RuntimeError(f"{out}: ops {sorted(missing)} are not in TensorRT's ONNX support list ({TENSORRT_OPS_FILE})")
    onnx.save(proto, str(out))
    return proto


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--height", type=int, help="network input height (default: the training size)")
    parser.add_argument("--width", type=int)
    parser.add_argument("--dynamic-batch", action="store_true", help="batch dimension free (several cameras)")
    parser.add_argument("--packed", type=Path, help="also write packed 1-bit weights (one .packed.bin file) here")
    parser.add_argument("--no-tensorrt-check", action="store_true",
                        help="skip the TensorRT op list (graphs for ONNX Runtime only, e.g. torchvision models)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        model, state = model_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    height, width = args.height or state["data"]["height"], args.width or state["data"]["width"]
    layers = binary_layers(model)
    binarized = bool(layers) and all(layer.binarized for _, layer in layers)
    export_onnx(model, args.out, height, width, model_info(state, height, width, binarized, args.dynamic_batch),
                args.dynamic_batch, tensorrt_check=not args.no_tensorrt_check)
    log.info("wrote %s (%dx%d, %s, %s batch)", args.out, width, height, "binary" if binarized else "float",
             "dynamic" if args.dynamic_batch else "fixed")
    if args.packed:
        from .packed import save_packed

        save_packed(model, state, args.packed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
