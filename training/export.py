"""`bisegunet-export`: a checkpoint to an ONNX model the runtime can run from the file alone.

    bisegunet-export --checkpoint runs/NAME/best.pt --out models/NAME.onnx [--dynamic-batch]
        [--height H --width W] [--class-filter 11,12 --background-id 0] [--logits]
        [--packed models/NAME.packed.bin]
    bisegunet-export --from-onnx OLD.onnx --out NEW.onnx [--logits]   # an exported file, re-wrapped

Opset 17; binary weights folded to sign * alpha and BatchNorm folded (fold.py); fixed H x W
(the training size unless given) and optionally a dynamic batch dimension, so several cameras
share one call. The graph takes uint8 RGB pixels (N, H, W, 3) and gives uint8 `labels` and
`confidence` (uint8_graph.py); `--logits` adds the float logits. metadata_props carry classes,
palette, input size, mean/std, channel order, preset, binarized flag, the class filter and the
training command, commit and configuration (bisegunet_ros/model_info.py): with the training record's
sha256 of this file (bench/shipped.py), model and record name each other.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch

from bisegunet_ros.cli_args import PIXELS
from bisegunet_ros.classes import CITYSCAPES, ClassTable
from bisegunet_ros.model_info import FORMAT_VERSION, PREFIX, ModelError, ModelInfo

from .checkpoint import load_checkpoint
from .fold import fold_for_inference
from .model import TORCHVISION_PREFIX, binary_layers, build_model, model_config_from_dict
from .uint8_graph import compose_uint8_graph, float_core

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


def class_table(names: list[str], palette: list[list[int]] | None = None) -> ClassTable:
    """The checkpoint's classes: its own palette, or for checkpoints without one Cityscapes colours for
    Cityscapes names and random colours for anything else."""
    if palette is not None:
        return ClassTable(tuple(names), tuple(tuple(int(v) for v in c) for c in palette))
    palette = dict(zip(CITYSCAPES.names, CITYSCAPES.palette))
    rng = np.random.default_rng(0)
    return ClassTable(tuple(names), tuple(palette.get(n, tuple(int(v) for v in rng.integers(0, 256, 3)))
                                          for n in names))


def model_info(state: dict, height: int, width: int, binarized: bool, dynamic_batch: bool) -> ModelInfo:
    data, cfg = state["data"], state["model_config"]
    torchvision = cfg["name"].startswith(TORCHVISION_PREFIX)
    name = cfg["name"].replace(":", "_") if torchvision else f"bisegunet_{cfg['name']}"
    return ModelInfo(classes=class_table(data["class_names"], data.get("palette")), input_height=height,
                     input_width=width, mean=tuple(data["mean"]), std=tuple(data["std"]), channel_order="rgb",
                     name=name, preset=cfg["name"], binarized=binarized,
                     training_command=state.get("command", ""), commit=state.get("commit", ""),
                     training_config=state.get("train_config", {}),
                     extra={"precision": "fp32", "dynamic_batch": dynamic_batch, "opset": OPSET})


def tensorrt_ops() -> set[str]:
    return {line.strip() for line in TENSORRT_OPS_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def unsupported_by_tensorrt(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node} - tensorrt_ops()


def export_onnx(model: torch.nn.Module, out: str | Path, height: int, width: int, info: ModelInfo,
                dynamic_batch: bool = False, tensorrt_check: bool = True, class_filter: Sequence[int] = (),
                background_id: int = 0, logits: bool = False) -> onnx.ModelProto:
    """Fold, export the float core, wrap it in the uint8 contract, attach metadata, check; returns the saved model.

    `tensorrt_check=False` skips the TensorRT op list (training/tensorrt_onnx_ops.txt, TensorRT 8.4's
    matrix) for graphs that only ONNX Runtime runs, such as torchvision's MobileNetV3 (HardSwish).
    """
    core = export_float_core(model, height, width, dynamic_batch)
    return save_uint8_model(core, out, info, tensorrt_check, class_filter, background_id, logits)


def export_float_core(model: torch.nn.Module, height: int, width: int, dynamic_batch: bool = False) -> onnx.ModelProto:
    """The folded network alone: normalised float (N, 3, H, W) `input` -> float `logits`, no metadata.

    What export_onnx wraps; bench/node.py runs it bare as the format-1 baseline.
    """
    folded = fold_for_inference(model)
    dummy = torch.zeros(1, 3, height, width)
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():    # sizes read as ints on purpose: the graph pads by constants (BiSegUNet.forward)
        warnings.filterwarnings("ignore", "Converting a tensor to a Python integer", torch.jit.TracerWarning)
        torch.onnx.export(folded, (dummy,), buffer, dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def save_uint8_model(core: onnx.ModelProto, out: str | Path, info: ModelInfo, tensorrt_check: bool = True,
                     class_filter: Sequence[int] = (), background_id: int = 0, logits: bool = False) -> onnx.ModelProto:
    """The uint8 model around a float-logits core, with `info`'s metadata (the class filter recorded), checked."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    proto = compose_uint8_graph(core, info.mean, info.std, len(info.classes), class_filter, background_id, logits)
    extra = {**info.extra, "outputs": [o.name for o in proto.graph.output]}
    if class_filter:
        extra.update(class_filter=sorted(set(class_filter)), background_id=background_id)
    onnx.helper.set_model_props(proto, replace(info, extra=extra).to_metadata())
    onnx.checker.check_model(proto, full_check=True)
    missing = unsupported_by_tensorrt(proto) if tensorrt_check else set()
    if missing:
        raise RuntimeError(f"{out}: ops {sorted(missing)} are not in TensorRT's ONNX support list ({TENSORRT_OPS_FILE})")
    onnx.save(proto, str(out))
    return proto


def rewrap_float_onnx(source: str | Path, out: str | Path, logits: bool = False) -> onnx.ModelProto:
    """An exported file re-wrapped in this version's uint8 contract, metadata and class filter kept:
    a format-1 file (float NCHW input, float logits) as it is, a format-2 file by its float network
    (uint8_graph.float_core) with today's head and tail (files exported before issue 23 compute
    the confidence with a Softmax over NCHW's class axis).

    For shipped models whose checkpoint is gone: the file carries its mean/std, so nothing is lost.
    The TensorRT op check applies when the source passed it (not to torchvision's HardSwish models).
    """
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # protobuf raises its own DecodeError for corrupt files
        raise ModelError(f"{source}: not a loadable ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if json.loads(props.get(PREFIX + "format_version", "0")) >= FORMAT_VERSION:
        if json.loads(props.get(PREFIX + "precision", '"fp32"')) == "int8":
            raise ModelError(f"{source}: an INT8 model; re-wrap its float model and quantize that again")
        try:
            core = float_core(model)
        except ValueError as exc:
            raise ModelError(f"{source}: {exc}") from exc
    else:
        core = model
    props[PREFIX + "format_version"] = json.dumps(FORMAT_VERSION)
    info = ModelInfo.from_metadata(props, str(source))
    return save_uint8_model(core, out, info, tensorrt_check=not unsupported_by_tensorrt(model),
                            class_filter=info.extra.get("class_filter", ()),
                            background_id=info.extra.get("background_id", 0), logits=logits)


def class_ids(text: str) -> list[int]:
    """argparse type: "11,12" -> [11, 12]."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path)
    source.add_argument("--from-onnx", type=Path,
                        help="re-wrap an exported ONNX (format 1, or format 2 with an older head and tail) instead")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--height", type=PIXELS, help="network input height H (default: the training size)")
    parser.add_argument("--width", type=PIXELS, help="network input width W (default: the training size)")
    parser.add_argument("--dynamic-batch", action="store_true", help="batch dimension free (several cameras)")
    parser.add_argument("--logits", action="store_true", help="also output float logits (evaluation, debugging)")
    parser.add_argument("--class-filter", type=class_ids, default=[],
                        help="class ids published as --background-id, fixed in the graph (e.g. 11,12)")
    parser.add_argument("--background-id", type=int, default=0)
    parser.add_argument("--packed", type=Path, help="also write packed 1-bit weights (one .packed.bin file) here")
    parser.add_argument("--no-tensorrt-check", action="store_true",
                        help="skip the TensorRT op list (graphs for ONNX Runtime only, e.g. torchvision models)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.from_onnx:
            if not args.from_onnx.is_file():
                raise FileNotFoundError(f"{args.from_onnx}: no such ONNX file")
            rewrap_float_onnx(args.from_onnx, args.out, args.logits)
            log.info("wrote %s (uint8 in, labels and confidence out) from %s", args.out, args.from_onnx)
            return 0
        model, state = model_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    height, width = args.height or state["data"]["height"], args.width or state["data"]["width"]
    layers = binary_layers(model)
    binarized = bool(layers) and all(layer.binarized for _, layer in layers)
    try:
        export_onnx(model, args.out, height, width, model_info(state, height, width, binarized, args.dynamic_batch),
                    args.dynamic_batch, not args.no_tensorrt_check, args.class_filter, args.background_id, args.logits)
    except ValueError as exc:     # a class filter outside the model's classes
        log.error("%s", exc)
        return 1
    log.info("wrote %s (%dx%d HxW, %s, %s batch)", args.out, height, width, "binary" if binarized else "float",
             "dynamic" if args.dynamic_batch else "fixed")
    if args.packed:
        from .packed import save_packed

        save_packed(model, state, args.packed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
