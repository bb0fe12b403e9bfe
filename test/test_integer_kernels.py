"""integer_kernels.widen_convolutions on small graphs: the same outputs (names, shapes, values) after as before."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bisegunet_training.integer_kernels import attribute, wide_channels, widen_convolutions

C, SIZE = 8, 6
RNG = np.random.default_rng(0)


def conv(inputs: list[str], output: str, name: str = "", group: int = 1, kernel: int = 3) -> onnx.NodeProto:
    return helper.make_node("Conv", inputs, [output], name=name, group=group, pads=[kernel // 2] * 4)


def weight(name: str, out_channels: int, in_channels: int, kernel: int = 3) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(RNG.standard_normal((out_channels, in_channels, kernel, kernel)).astype(np.float32),
                                    name + "_w"),
            numpy_helper.from_array(RNG.standard_normal(out_channels).astype(np.float32), name + "_b")]


def model(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto], outputs: list[str],
          extra_inputs: tuple[tuple[str, list[int]], ...] = ()) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", C, SIZE, SIZE])]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in extra_inputs]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                                   for o in outputs], initializers)
    made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    made.ir_version = 8
    return made


def run(made: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(made.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def widened_and_same(made: onnx.ModelProto, extra_feeds: dict | None = None) -> tuple[onnx.ModelProto, list[str]]:
    """Widen a copy; assert its outputs equal the original's (batch of 2); return it and the changed names."""
    wide = onnx.ModelProto()
    wide.CopyFrom(made)
    changed = widen_convolutions(wide.graph)
    wide = onnx.shape_inference.infer_shapes(wide)
    onnx.checker.check_model(wide, full_check=True)
    feeds = {"x": RNG.standard_normal((2, C, SIZE, SIZE)).astype(np.float32), **(extra_feeds or {})}
    before, after = run(made, feeds), run(wide, feeds)
    assert list(after) == list(before)
    for name in before:
        assert after[name].shape == before[name].shape, name
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-5)
    return wide, changed


def ops(made: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    return [n for n in made.graph.node if n.op_type == op_type]


def test_a_convolution_reading_a_widened_output_reads_all_of_it_without_a_slice():
    made = model([conv(["x", "a_w", "a_b"], "a", "a"), helper.make_node("Relu", ["a"], ["r"]),
                  conv(["r", "b_w", "b_b"], "y", "b")], weight("a", 6, C) + weight("b", 24, 6), ["y"])
    wide, changed = widened_and_same(made)
    assert changed == ["a", "b"] and not ops(wide, "Slice")
    widths = {i.name: list(i.dims) for i in wide.graph.initializer}
    assert [widths[n.input[1]][:2] for n in ops(wide, "Conv")] == [[16, C], [24, 16]]


def test_a_graph_output_keeps_its_width_where_a_relu_reads_it_too():
    """The convolution's own output is a graph output: it is sliced there, not renamed behind the Relu."""
    made = model([conv(["x", "a_w", "a_b"], "a", "a"), helper.make_node("Relu", ["a"], ["r"]),
                  conv(["r", "b_w", "b_b"], "y", "b")], weight("a", 6, C) + weight("b", 16, 6), ["a", "y"])
    wide, _ = widened_and_same(made)
    assert len(ops(wide, "Slice")) == 1


def test_unnamed_convolutions_get_weights_of_their_own():
    made = model([conv(["x", "a_w", "a_b"], "a"), conv(["x", "b_w", "b_b"], "b"),
                  helper.make_node("Add", ["a", "b"], ["y"])], weight("a", 6, C) + weight("b", 6, C), ["y"])
    wide, changed = widened_and_same(made)
    assert len(changed) == 2 and len({n.input[1] for n in ops(wide, "Conv")}) == 2


def test_readers_the_rewrite_cannot_reach_get_a_slice_of_the_real_channels():
    """A depthwise convolution and one whose weights are a graph input read the 6 real channels."""
    made = model([conv(["x", "a_w", "a_b"], "a", "a"), helper.make_node("Relu", ["a"], ["r"]),
                  conv(["r", "d_w"], "d", "depthwise", group=6), conv(["r", "w_in"], "e", "dynamic"),
                  helper.make_node("Add", ["d", "e"], ["y"])],
                 weight("a", 6, C) + weight("d", 6, 1)[:1], ["y"], extra_inputs=(("w_in", [6, 6, 3, 3]),))
    wide, changed = widened_and_same(made, {"w_in": RNG.standard_normal((6, 6, 3, 3)).astype(np.float32)})
    assert changed == ["a"] and len(ops(wide, "Slice")) == 1


@pytest.mark.parametrize("group, in_channels, ungrouped", [(4, 8, True), (2, 6, False), (8, 8, False)],
                         ids=["ungrouped", "dense-input-not-in-fours", "too-many-groups"])
def test_grouped_convolutions_are_ungrouped_only_where_that_reaches_the_kernel(group, in_channels, ungrouped):
    made = model([helper.make_node("Slice", ["x", "s0", "s1", "ax"], ["xs"]),
                  conv(["xs", "g_w", "g_b"], "y", "grouped", group=group)],
                 weight("g", 8, in_channels // group) + [numpy_helper.from_array(np.array([v], np.int64), n)
                                                        for n, v in (("s0", 0), ("s1", in_channels), ("ax", 1))],
                 ["y"])
    wide, changed = widened_and_same(made)
    (node,) = ops(wide, "Conv")
    assert (attribute(node, "group", 1) == 1) == ungrouped and bool(changed) == ungrouped


def test_a_graph_with_subgraphs_is_left_alone(caplog):
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    made = model([conv(["x", "a_w", "a_b"], "a", "a"),
                  helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
                  helper.make_node("Cast", ["m"], ["cond"], to=TensorProto.BOOL),
                  helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)],
                 weight("a", 6, C), ["a"])
    assert widen_convolutions(made.graph) == [] and "subgraphs" in caplog.text


def test_wide_channels_are_what_mlas_symmetric_kernel_takes():
    assert [wide_channels(c) for c in (4, 6, 16, 19, 24, 44, 64)] == [16, 16, 16, 24, 24, 48, 64]
