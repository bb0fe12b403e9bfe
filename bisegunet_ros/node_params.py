"""Every parameter of the segmentation node, declared in one place with descriptor and range.

Defaults here equal config/segment.yaml; the YAML is what users edit, this table is what the
node accepts. An out-of-range or unknown choice, or a name it does not know (a misspelling in
the parameters file), stops the node at start with one clear message. Every parameter is read
once at start (declared read-only): a change needs a restart.
"""
from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from .backends import BACKENDS
from .classes import ClassTable
from .pipeline import OUTPUT_RESOLUTIONS


@dataclass(frozen=True)
class Spec:
    default: object
    description: str
    choices: tuple = ()
    range: tuple = ()          # (low, high) inclusive, for numbers


SPECS: dict[str, Spec] = {
    "model_path": Spec("", "ONNX model written by bisegunet-export (its metadata carries classes and input size); "
                           "a TensorRT engine built from it is cached in engine_cache_dir"),
    "backend": Spec("auto", "inference backend; auto = TensorRT when usable, else ONNX Runtime", BACKENDS),
    "precision": Spec("fp16", "TensorRT engine precision", ("fp32", "fp16", "int8")),
    "engine_cache_dir": Spec("", "directory for TensorRT engines, created on demand; '' = "
                                 "$ROS_HOME/bisegunet_engines (ROS_HOME defaults to ~/.ros)"),
    "max_batch": Spec(0, "TensorRT engine: largest batch (frames per call; more cameras are split into several "
                         "calls); 0 = the number of cameras. The engine is tuned for one frame per camera",
                      range=(0, 64)),
    "tf32": Spec(True, "TensorRT engine: allow TF32 tactics for FP32 layers (TensorRT's default: on)"),
    "threads": Spec(0, "ONNX Runtime intra-op threads (0 = one per core)", range=(0, 256)),
    "cameras": Spec(["camera"], "camera namespaces: <ns>/image in, <ns>/segmentation/* out"),
    "transport": Spec("raw", "raw = <ns>/image (sensor_msgs/Image), compressed = <ns>/image/compressed "
                             "(sensor_msgs/CompressedImage, JPEG or PNG)", ("raw", "compressed")),
    "input_qos": Spec("sensor_data", "QoS of the image subscriptions (depth 1: only the newest frame counts)",
                      ("sensor_data", "reliable", "system_default")),
    "output_resolution": Spec("input", "label size: input (nearest-neighbour upsampled) or network",
                              OUTPUT_RESOLUTIONS),
    "overlay_alpha": Spec(0.5, "weight of the class colours in the overlay image", range=(0.0, 1.0)),
    "mask_classes": Spec(["road", "person", "car"], "classes (names or ids) published in class_masks; the "
                                                    "default list means those of its classes the model has"),
    "class_filter": Spec([""], "classes (names or ids) mapped to background_id in every output; [''] = none"),
    "background_id": Spec(0, "class id that filtered classes become", range=(0, 65535)),
    "publish_confidence": Spec(True, "publish the confidence image (max softmax x 255) when subscribed"),
    "stale_timeout": Spec(2.0, "seconds without a frame before a camera's diagnostics turn WARN", range=(0.1, 3600.0)),
}


# Parameters that rclpy itself declares and reads; given to this node, they are not misspellings.
ROS_PARAMETERS = ("use_sim_time", "start_type_description_service")


class ParameterError(ValueError):
    """A parameter value the node cannot run with."""


def _descriptor(name: str, spec: Spec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, description=spec.description, read_only=True)
    if spec.choices:
        descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.range[0], to_value=spec.range[1])]
    elif spec.range:
        descriptor.integer_range = [IntegerRange(from_value=spec.range[0], to_value=spec.range[1], step=1)]
    return descriptor


def declare(node: Node) -> dict[str, object]:
    """Declare every parameter on `node` and return the validated values by name.

    `node` is made with automatically_declare_parameters_from_overrides=True, so that what was given
    (parameters file, -p) is declared untyped at its creation and a name this table lacks can be
    refused; each known one is then declared again with its type, range and read-only descriptor.
    """
    unknown = sorted(set(node.list_parameters([], 0).names) - set(SPECS) - set(ROS_PARAMETERS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)} (misspelled in the parameters file or a -p?); "
                             f"{node.get_name()} accepts: {', '.join(SPECS)}")
    values = {}
    for name, spec in SPECS.items():
        if node.has_parameter(name):
            node.undeclare_parameter(name)
        try:
            param = node.declare_parameter(name, spec.default, _descriptor(name, spec))
        except Exception as exc:  # rclpy raises several types for type and range violations
            raise ParameterError(f"parameter {name!r}: {exc} ({spec.description})") from exc
        value = param.value
        if isinstance(spec.default, list):  # ROS cannot type [] (its value is None); [''] stands for it too
            value = [v for v in value or () if v != ""]
        if spec.choices and value not in spec.choices:
            raise ParameterError(f"parameter {name!r} is {value!r}; it must be one of {', '.join(spec.choices)}")
        values[name] = value
    if not values["model_path"]:
        raise ParameterError("parameter 'model_path' is empty: give the .onnx written by bisegunet-export "
                             "(launch argument model:=PATH, or model_path in the parameters file)")
    if not values["cameras"]:
        raise ParameterError("parameter 'cameras' is empty: list at least one camera namespace")
    return values


def resolve_mask_classes(classes: ClassTable, params: dict) -> tuple[list[int], str]:
    """Class ids of `mask_classes` and a warning ("" if none). Left at the default (road, person, car),
    it means those of them the model has, so that a model trained on its own classes starts without
    setting it; a list of the user's own must name classes of the model."""
    wanted = params["mask_classes"]
    if wanted != SPECS["mask_classes"].default:
        return resolve_classes(classes, params, "mask_classes"), ""
    ids = [classes.names.index(name) for name in wanted if name in classes.names]
    warning = "" if ids else (f"the model has none of the default mask_classes ({', '.join(wanted)}): no class "
                              f"masks; set mask_classes to some of {', '.join(classes.names)}")
    return ids, warning


def resolve_classes(classes: ClassTable, params: dict, name: str) -> list[int]:
    """Class ids for the names or ids of parameter `name`; a ParameterError names the parameter and the
    model's classes (a model trained on its own class file has none of the Cityscapes defaults)."""
    try:
        return classes.resolve(params[name])
    except ValueError as exc:
        raise ParameterError(f"parameter {name!r}: {exc} (set it to classes of this model)") from exc
