"""The exported graph's tail: the confidence's definition, and the labels-only graph the runtime runs without it."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bisegunet_ros.backends import load_backend
from bisegunet_ros.onnx_wire import without_output
from bisegunet_ros.pipeline import SegmentationPipeline
from bisegunet_training.uint8_graph import PREFIX
from tiny_onnx import write_tiny_onnx

CONFIDENCE_FLOAT = PREFIX + "confidence_float"


def _pixels(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 64, 3), dtype=np.uint8)


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).max(1)


@pytest.mark.parametrize("stride, opset", [(1, 17), (4, 17), (4, 18)])
def test_confidence_is_the_largest_softmax_probability(tmp_path, stride, opset):
    """Within 1e-5 of numpy's float64 softmax-max before the uint8 rounding, on logits spread over
    tens of units (weights x 8), and truncated x 255 after it; logits made at full size (stride 1) and
    upsampled from stride 4 (the NHWC tail; its ReduceMax takes its axes as an input from opset 18)."""
    path = write_tiny_onnx(tmp_path / "m.onnx", logits=True, stride=stride, opset=opset)
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "W":
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 8, "W"))
    model.graph.output.append(helper.make_tensor_value_info(CONFIDENCE_FLOAT, TensorProto.FLOAT, None))
    onnx.save(model, str(path))
    import onnxruntime as ort

    labels, confidence, logits, confidence_float = ort.InferenceSession(str(path)).run(
        None, {"pixels": _pixels(4)})
    expected = _softmax_max(logits)
    assert np.ptp(logits) > 40 and expected.min() < 0.5 < expected.max()        # the full range is exercised
    np.testing.assert_allclose(confidence_float / 255, expected, atol=1e-5, rtol=0)
    truncated = np.floor(expected * 255)
    clear = np.abs(expected * 255 - np.round(expected * 255)) > 1e-3           # away from a rounding boundary
    np.testing.assert_array_equal(confidence[clear], truncated[clear])
    if stride == 1:   # over NCHW's class axis these are the slow ones; NHWC's tail is a last-axis Softmax
        assert not {n.op_type for n in model.graph.node} & {"Softmax", "ReduceMax", "ReduceSum"}
    else:
        assert {n.op_type for n in model.graph.node if n.name.startswith(PREFIX)} >= {"Softmax", "ReduceMax"}


@pytest.mark.parametrize("mapping", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
def test_a_core_ending_in_a_bilinear_resize_is_upsampled_in_nhwc_with_the_network_labels(mapping):
    """Issue 23: the small logits change layout, not the full-size ones; the labels are the argmax of the
    network's own NCHW logits (the core as given, run alone) wherever the top two classes are not within float
    rounding of each other, for each coordinate mapping the move keeps; float_core gives that network back."""
    import onnxruntime as ort

    from bisegunet_training.normalisation import normalise
    from bisegunet_training.uint8_graph import compose_uint8_graph, float_core
    from tiny_onnx import MEAN, STD, tiny_core, tiny_info

    info = tiny_info()
    core = tiny_core(info, stride=4, coordinate_transformation_mode=mapping)
    model = compose_uint8_graph(core, MEAN, STD, len(info.classes))
    transposes = [n for n in model.graph.node if n.op_type == "Transpose"]
    assert [n.name for n in transposes] == [PREFIX + "nchw", PREFIX + "small_logits_nhwc"]   # pixels, small logits
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    assert resize.name.startswith(PREFIX) and resize.input[0] == transposes[1].output[0]
    assert {n.op_type for n in model.graph.node if not n.name.startswith(PREFIX)} == {"Conv"}
    pixels = _pixels(3, seed=2)
    feed = {"input": normalise(pixels, MEAN, STD).transpose(0, 3, 1, 2).copy()}
    logits = ort.InferenceSession(core.SerializeToString()).run(None, feed)[0]
    labels = ort.InferenceSession(model.SerializeToString()).run(["labels"], {"pixels": pixels})[0]
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(labels[clear], logits.argmax(1)[clear])
    back = float_core(model)
    assert [n.op_type for n in back.graph.node] == ["Conv", "Resize"]
    np.testing.assert_allclose(ort.InferenceSession(back.SerializeToString()).run(None, feed)[0], logits, atol=1e-5)


@pytest.mark.parametrize("case", ["nearest", "crop_and_resize", "factor_1", "scales_off_the_sizes", "axes",
                                  "off_stride"])
def test_a_resize_the_move_would_change_keeps_the_nchw_tail(case):
    """What _final_upsampling refuses: the graph keeps the NCHW tail (a 1x1 convolution sums the classes) and
    still gives the core's labels."""
    import onnxruntime as ort

    from bisegunet_training.normalisation import normalise
    from bisegunet_training.uint8_graph import compose_uint8_graph
    from tiny_onnx import MEAN, STD, tiny_core, tiny_info

    info = tiny_info(30 if case == "off_stride" else 32, 64)
    core = {"nearest": lambda: tiny_core(info, stride=4, mode="nearest"),
            "crop_and_resize": lambda: tiny_core(info, stride=4, coordinate_transformation_mode="tf_crop_and_resize"),
            "factor_1": lambda: tiny_core(info, stride=4, scales=(1, 1, 1, 1)),
            "scales_off_the_sizes": lambda: tiny_core(info, stride=4, scales=(1, 1, 4.05, 4.02)),
            "axes": lambda: tiny_core(info, stride=4, scales=(4, 4), axes=[2, 3]),
            "off_stride": lambda: tiny_core(info, stride=4, scales=(1, 1, 30 / 8, 4))}[case]()
    if case == "axes":
        core.opset_import[0].version = 18
    if case == "crop_and_resize":   # its roi input, all of the image
        core.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32),
                                                                   "roi"))
        core.graph.node[1].input[1] = "roi"
    model = compose_uint8_graph(core, MEAN, STD, len(info.classes))
    assert PREFIX + "partition" in {n.name for n in model.graph.node}            # the NCHW tail's sum
    assert not any(n.op_type == "Resize" and n.name.startswith(PREFIX) for n in model.graph.node)
    pixels = np.random.default_rng(3).integers(0, 256, (2, info.input_height, info.input_width, 3), np.uint8)
    try:
        logits = ort.InferenceSession(core.SerializeToString()).run(
            None, {"input": normalise(pixels, MEAN, STD).transpose(0, 3, 1, 2).copy()})[0]
    except Exception:              # a Resize that gives no input-size logits (factor 1): nothing to compare
        return
    if logits.shape[2:] != pixels.shape[1:3]:
        return
    labels = ort.InferenceSession(model.SerializeToString()).run(["labels"], {"pixels": pixels})[0]
    np.testing.assert_array_equal(labels, logits.argmax(1))


@pytest.mark.parametrize("stride", [1, 4])
def test_labels_only_graph_drops_the_confidence_branch_and_keeps_labels_and_logits(tmp_path, stride):
    data = write_tiny_onnx(tmp_path / "m.onnx", logits=True, stride=stride).read_bytes()
    full, pruned = onnx.load_from_string(data), onnx.load_from_string(without_output(data, "confidence"))
    onnx.checker.check_model(pruned, full_check=True)
    assert [o.name for o in pruned.graph.output] == ["labels", "logits"]
    assert {n.op_type for n in full.graph.node} - {n.op_type for n in pruned.graph.node} >= (
        {"Exp", "GatherElements"} if stride == 1 else {"Softmax", "ReduceMax"})
    confidence_only = {PREFIX + "255"} | ({PREFIX + "ones", PREFIX + "class_axis"} if stride == 1 else set())
    assert {i.name for i in pruned.graph.initializer} == {i.name for i in full.graph.initializer} - confidence_only
    assert {p.key: p.value for p in pruned.metadata_props} == {p.key: p.value for p in full.metadata_props}
    assert without_output(data, "no such output") is None


def test_backend_without_confidence_gives_the_same_labels_and_no_confidence(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "onnxruntime")
    assert [o.name for o in backend.labels_session.get_outputs()] == ["labels"]
    pixels = _pixels(3, seed=1)
    both, labels_only = backend.infer(pixels), backend.infer(pixels, confidence=False)
    np.testing.assert_array_equal(labels_only.labels, both.labels)
    assert both.confidence.shape == (3, 32, 64) and labels_only.confidence is None
    pipeline = SegmentationPipeline(backend)
    assert pipeline.run([pixels[0]])[0].confidence is None
    np.testing.assert_array_equal(pipeline.run([pixels[0]], want_confidence=True)[0].confidence, both.confidence[0])


def test_a_model_with_the_softmax_tail_of_earlier_exports_still_runs(tmp_path):
    """Files exported before the tail changed (Softmax over NCHW's class axis -> ReduceMax -> x 255) load, give
    the same outputs and prune to the same labels-only graph."""
    path = write_tiny_onnx(tmp_path / "m.onnx")
    new = load_backend(path, "onnxruntime").infer(_pixels())
    model = onnx.load(str(path))
    logits = next(n for n in model.graph.node if n.op_type == "ArgMax").input[0]
    branch = {n.name for n in model.graph.node if n.name.startswith(PREFIX) and n.op_type not in
              ("Cast", "Transpose", "BatchNormalization", "ArgMax", "Gather") or n.output[0] == "confidence"}
    kept = [n for n in model.graph.node if n.name not in branch]
    del model.graph.node[:]
    model.graph.node.extend(kept + [
        helper.make_node("Softmax", [logits], ["old/softmax"], axis=1, name="uint8_io/softmax"),
        helper.make_node("ReduceMax", ["old/softmax"], ["old/peak"], axes=[1], keepdims=0, name="uint8_io/peak"),
        helper.make_node("Mul", ["old/peak", PREFIX + "255"], ["old/float"], name="uint8_io/confidence_float"),
        helper.make_node("Cast", ["old/float"], ["confidence"], to=TensorProto.UINT8, name="uint8_io/confidence")])
    onnx.save(model, str(tmp_path / "old.onnx"))
    backend = load_backend(tmp_path / "old.onnx", "onnxruntime")
    old = backend.infer(_pixels())
    np.testing.assert_array_equal(old.labels, new.labels)
    assert np.abs(old.confidence.astype(int) - new.confidence.astype(int)).max() <= 1
    assert [o.name for o in backend.labels_session.get_outputs()] == ["labels"]



def test_tail_bench_smoke_writes_its_json_and_markdown(tmp_path):
    """bench/tail.py at a toy size (the benchmark itself is `python -m bench.tail`): keeps its path from rotting."""
    import json

    from bench import tail

    assert tail.main(["--smoke", "--profile", "--out", str(tmp_path / "tail")]) == 0
    row = json.loads((tmp_path / "tail.json").read_text())["results"][0]
    assert set(row["latency_ms"]) == {"bare", "labels + confidence", "labels only"}
    assert all(len(s["values"]) == 2 and s["median"] > 0 for s in row["ratio_to_bare"].values())
    assert "ArgMax" in row["profile_ms_by_op"]["bare"] and "Exp" not in row["profile_ms_by_op"]["labels only"]
    assert "| tiny | 32x64 |" in (tmp_path / "tail.md").read_text()
