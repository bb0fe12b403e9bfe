"""A hand-built ONNX segmenter with bisegunet metadata, for runtime tests that need no torch.

Its logits are a fixed linear function of the normalised pixel (a 1x1 convolution), so the
labels it gives any image are known in advance and backends can be checked against numpy. The
float core is wrapped by the exporter's own `compose_uint8_graph` (uint8 pixels in, uint8 labels
and confidence out; `logits=True` adds the float logits), so tests run the real contract.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bisegunet_ros.classes import CITYSCAPES, ClassTable
from bisegunet_ros.model_info import ModelInfo
from bisegunet_training.normalisation import normalise
from bisegunet_training.uint8_graph import compose_uint8_graph

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def tiny_info(height: int = 32, width: int = 64, classes: ClassTable = CITYSCAPES) -> ModelInfo:
    return ModelInfo(classes=classes, input_height=height, input_width=width, mean=MEAN, std=STD,
                     name="tiny-test", preset="test", binarized=False)


def conv_weights(num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(num_classes, 3, 1, 1)).astype(np.float32),
            rng.normal(size=num_classes).astype(np.float32) * 0.1)


def _save(core: onnx.ModelProto, path: Path, info: ModelInfo, metadata: bool = True, logits: bool = False,
          class_filter: tuple[int, ...] = ()) -> Path:
    core.ir_version = 8
    model = compose_uint8_graph(core, info.mean, info.std, len(info.classes), class_filter, logits=logits)
    if metadata:
        helper.set_model_props(model, info.to_metadata())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_core(info: ModelInfo, dynamic_batch: bool = True, stride: int = 1, scales: tuple[float, ...] | None = None,
              opset: int = 17, **resize: object) -> onnx.ModelProto:
    """The float network: a 1x1 convolution of the normalised pixel. `stride` > 1: the convolution strides and a
    Resize (bilinear, half-pixel as torch's interpolate exports, unless `resize` gives other attributes) brings
    its logits back to the input size by `scales` (default: the stride), the ending of a decoder with
    output_stride > 1; then reference_logits no longer applies."""
    weight, bias = conv_weights(len(info.classes))
    batch = "N" if dynamic_batch else 1
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["logits"])]
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")]
    if stride > 1:
        nodes = [helper.make_node("Conv", ["input", "W", "B"], ["small"], strides=[stride, stride]),
                 helper.make_node("Resize", ["small", "", "scales"], ["logits"],
                                  **{"mode": "linear", "coordinate_transformation_mode": "half_pixel", **resize})]
        inits.append(numpy_helper.from_array(np.array(scales or [1, 1, stride, stride], np.float32), "scales"))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, info.input_height, info.input_width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       [batch, len(info.classes), info.input_height, info.input_width])],
        inits,
    )
    core = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    core.ir_version = 8
    return core


def write_tiny_onnx(path: Path, info: ModelInfo | None = None, dynamic_batch: bool = True,
                    metadata: bool = True, logits: bool = False, class_filter: tuple[int, ...] = (),
                    stride: int = 1, opset: int = 17) -> Path:
    """tiny_core (`stride`, `opset` as there) in the uint8 contract, with `info`'s metadata unless `metadata` is
    False."""
    info = info or tiny_info()
    return _save(tiny_core(info, dynamic_batch, stride, opset=opset), path, info, metadata, logits, class_filter)


def reference_logits(pixels: np.ndarray, num_classes: int) -> np.ndarray:
    """What the tiny model computes for uint8 RGB pixels (N, H, W, 3), in numpy: (N, C, H, W)."""
    weight, bias = conv_weights(num_classes)
    normalised = normalise(pixels, MEAN, STD)
    return np.einsum("kc,nhwc->nkhw", weight[:, :, 0, 0], normalised) + bias[None, :, None, None]


def write_slow_onnx(path: Path, info: ModelInfo | None = None, layers: int = 12, channels: int = 32) -> Path:
    """A model that takes tens of ms per frame (a stack of 3x3 convolutions), for overload tests."""
    info = info or tiny_info(128, 256)
    rng = np.random.default_rng(1)
    nodes, inits, prev, width = [], [], "input", 3
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (channels, width, 3, 3)).astype(np.float32), f"W{i}"))
        nodes += [helper.make_node("Conv", [prev, f"W{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, width = f"r{i}", channels
    inits.append(numpy_helper.from_array(rng.normal(size=(len(info.classes), channels, 1, 1)).astype(np.float32), "Wo"))
    nodes.append(helper.make_node("Conv", [prev, "Wo"], ["logits"]))
    shape = [1, 3, info.input_height, info.input_width]
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path, info)
