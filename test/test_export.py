"""Export: uint8-in/uint8-out ONNX with folded binary weights and metadata, packed 1-bit weights, INT8 QDQ, bad input."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from bisegunet_ros.backends import load_backend
from bisegunet_ros.classes import CITYSCAPES
from bisegunet_ros.pipeline import SegmentationPipeline
from bisegunet_training.checkpoint import save_checkpoint
from bisegunet_training.data import render_scene
from bisegunet_training.export import main as export_main
from bisegunet_training.export import model_from_checkpoint, tensorrt_ops
from bisegunet_training.normalisation import normalise
from bisegunet_training.model import binary_layers, build_model, load_model_config, set_binarized
from bisegunet_training.packed import PackedError, fp32_bytes, load_packed, save_packed

H, W = 64, 128
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_checkpoint(path, overrides: list[str] = (), fresh_norms: bool = False, preset: str = "tiny"):
    """A binarized checkpoint of `preset` with non-trivial BatchNorm statistics, so folding is really exercised:
    running statistics measured on synthetic scenes (as training leaves them), random scales; with
    `fresh_norms`, BatchNorm as initialised (every folded bias zero)."""
    torch.manual_seed(0)
    cfg = load_model_config(preset, overrides)
    model = build_model(cfg)
    set_binarized(model, True)
    norms = [] if fresh_norms else [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:
        for m in norms:
            m.momentum = None                                # cumulative average over the batches below
        frames = np.stack([render_scene(7, i, H, W)[0] for i in range(4)]).astype(np.float32) / 255
        with torch.no_grad():
            model.train()(torch.from_numpy((frames - MEAN) / STD).permute(0, 3, 1, 2).float())
            for m in norms:
                m.momentum = 0.1
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    from dataclasses import asdict

    save_checkpoint(path, {"model_config": asdict(cfg), "model": model.state_dict(),
                           "binarized": {n: True for n, _ in binary_layers(model)},
                           "data": {"height": H, "width": W, "mean": MEAN, "std": STD,
                                    "class_names": list(CITYSCAPES.names)},
                           "command": "bisegunet-train --config test", "commit": "abc123",
                           "train_config": {"name": "test", "seed": 3, "data": {"seed": 0}}})
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(out), "--dynamic-batch", "--logits"]) == 0
    return out


def _io(model: onnx.ModelProto, values) -> list[tuple[str, int, list]]:
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values]


def test_graph_is_valid_takes_uint8_pixels_and_uses_only_tensorrt_ops(exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert {n.op_type for n in model.graph.node} <= tensorrt_ops()
    norms = [n.input[0] for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert norms == ["uint8_io/nchw"]       # the pixels' normalisation; the network's BatchNorms are folded
    u8, f32 = onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT
    assert _io(model, model.graph.input) == [("pixels", u8, ["batch", H, W, 3])]
    assert _io(model, model.graph.output) == [("labels", u8, ["batch", H, W]), ("confidence", u8, ["batch", H, W]),
                                              ("logits", f32, ["batch", 19, H, W])]


def test_without_logits_flag_the_graph_gives_only_labels_and_confidence(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["labels", "confidence"]


def test_every_binary_conv_has_two_values_per_output_channel(exported, checkpoint):
    model = onnx.load(str(exported))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    two_valued = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            per_channel = [np.unique(np.abs(c)).size == 1 and np.unique(c).size == 2 for c in w]
            two_valued += all(per_channel)
    torch_model, _ = model_from_checkpoint(checkpoint)
    assert two_valued == len(binary_layers(torch_model))


def test_metadata_makes_the_file_enough(exported):
    backend = load_backend(exported, "onnxruntime")
    info = backend.info
    assert info.classes == CITYSCAPES and (info.input_height, info.input_width) == (H, W)
    assert list(info.mean) == MEAN and info.binarized and info.preset == "tiny"
    assert info.training_command == "bisegunet-train --config test" and info.commit == "abc123"
    assert info.training_config == {"name": "test", "seed": 3, "data": {"seed": 0}}    # provenance: the run's config
    assert backend.max_batch > 1           # dynamic batch


def assert_onnxruntime_matches_pytorch(exported, checkpoint):
    """The graph's normalisation is training's: logits within 1e-3 of PyTorch on normalise()d frames."""
    model, _ = model_from_checkpoint(checkpoint)
    frames = np.stack([render_scene(123, i, H, W)[0] for i in range(6)])
    out = load_backend(exported, "onnxruntime").infer(frames)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(normalise(frames, MEAN, STD).transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(out.logits, torch_logits, atol=1e-3, rtol=0)


def test_graph_labels_equal_numpy_argmax_of_its_logits(exported):
    """>= 99.99 % of pixels equal; pixels whose top two logits tie within float noise are left aside."""
    frames = np.stack([render_scene(321, i, H, W)[0] for i in range(6)])
    out = load_backend(exported, "onnxruntime").infer(frames)
    top2 = np.sort(out.logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-6
    agree = out.labels == out.logits.argmax(1)
    assert clear.mean() > 0.99 and agree[clear].mean() >= 0.9999
    softmax_peak = 1 / np.exp(out.logits - out.logits.max(1, keepdims=True)).sum(1)
    assert np.abs(out.confidence.astype(int) - (softmax_peak * 255).astype(int)).max() <= 1


def test_class_filter_fixed_at_export_maps_to_background(checkpoint, exported, tmp_path):
    plain = load_backend(exported, "onnxruntime")
    frames = np.stack([render_scene(9, i, H, W)[0] for i in range(2)])
    labels = plain.infer(frames).labels.copy()
    present = [int(c) for c in np.unique(labels) if c != 2]
    out = tmp_path / "filtered.onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(out), "--dynamic-batch",
                        "--class-filter", ",".join(map(str, present)), "--background-id", "2"]) == 0
    filtered = load_backend(out, "onnxruntime")
    assert filtered.info.extra["class_filter"] == sorted(present) and filtered.info.extra["background_id"] == 2
    assert (filtered.infer(frames).labels == 2).all()


def test_bad_class_filter_is_one_clear_error(checkpoint, tmp_path, caplog):
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"),
                        "--class-filter", "40"]) == 1
    assert "class ids [40] are outside 0..18" in caplog.text


def assert_packed_round_trip(checkpoint, path):
    """The packed file rebuilds a model with bit-identical outputs."""
    model, state = model_from_checkpoint(checkpoint)
    restored, meta = load_packed(save_packed(model, state, path))
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))
    assert meta["data"]["class_names"] == list(CITYSCAPES.names)


def test_onnxruntime_matches_pytorch_on_synthetic_frames(exported, checkpoint):
    assert_onnxruntime_matches_pytorch(exported, checkpoint)


def test_packed_weights_round_trip_to_identical_outputs(checkpoint, tmp_path):
    assert_packed_round_trip(checkpoint, tmp_path / "tiny.packed.bin")


def test_packed_file_is_18x_smaller_than_the_fp32_onnx(exported, checkpoint, tmp_path):
    """Real bytes on disk: one buffer of bits plus a compressed index, not an archive of hundreds of arrays."""
    model, state = model_from_checkpoint(checkpoint)
    path = save_packed(model, state, tmp_path / "tiny.packed.bin")
    assert exported.stat().st_size / path.stat().st_size >= 18
    bits = sum(layer.weight.numel() for _, layer in binary_layers(model))
    floats = fp32_bytes(model) - 4 * bits                   # what stays float32: alphas, BN, stem, head
    assert path.stat().st_size < 1.1 * (bits / 8 + floats)   # the index adds under 10 %


def test_weight_standardised_model_exports_and_packs_exactly(tmp_path):
    """IR-Net standardisation (what ships): ONNX folds the standardized signs, the packed file keeps them."""
    ws = write_checkpoint(tmp_path / "ws.pt", ["weight_standardization=true"])
    out = tmp_path / "ws.onnx"
    assert export_main(["--checkpoint", str(ws), "--out", str(out), "--dynamic-batch", "--logits"]) == 0
    assert_onnxruntime_matches_pytorch(out, ws)
    assert_packed_round_trip(ws, tmp_path / "ws.packed.bin")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 an old npz", b"BSGPACK1\xff\xff\x00\x00 cut"])
def test_unreadable_packed_file_is_named(tmp_path, content):
    path = tmp_path / "bad.packed.bin"
    path.write_bytes(content)
    with pytest.raises(PackedError, match="bad.packed.bin: "):
        load_packed(path)


def assert_symmetric_int8_qdq_with_uint8_ends(model: onnx.ModelProto) -> None:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for node in qdq:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    per_channel = [n for n in qdq if n.op_type == "DequantizeLinear" and inits.get(n.input[1]) is not None
                   and inits[n.input[1]].size > 1]
    assert per_channel                                          # per-channel weight scales
    assert {n.op_type for n in model.graph.node} <= tensorrt_ops()
    u8 = onnx.TensorProto.UINT8
    assert [(v.name, v.type.tensor_type.elem_type) for v in model.graph.input] == [("pixels", u8)]
    assert [(v.name, v.type.tensor_type.elem_type) for v in model.graph.output][:2] == [("labels", u8),
                                                                                       ("confidence", u8)]


def assert_only_the_slow_convolutions_float(fp32_path, cpu_path) -> int:
    """The CPU INT8 model's float convolutions are exactly quantize.float_convolutions of its widened FP32
    model, each reading its own float weight and bias; ONNX Runtime's optimised graph runs all the others as
    integer and does not quantize these again. Returns how many there are."""
    from bisegunet_training.integer_kernels import widen_convolutions
    from bisegunet_training.quantize import float_convolutions, float_head_and_tail, integer_convolutions

    fp32 = onnx.load(str(fp32_path)).graph
    widen_convolutions(fp32, excluded=set(float_head_and_tail(fp32)))
    expected = set(float_convolutions(fp32))
    graph = onnx.load(str(cpu_path)).graph
    inits = {i.name for i in graph.initializer}
    network_convs = [n for n in graph.node if n.op_type == "Conv" and not n.name.startswith("uint8_io/")]
    assert {n.name for n in network_convs if n.input[1] in inits} == expected
    assert all(i in inits for n in network_convs if n.name in expected for i in n.input[1:] if i)
    integer, total = integer_convolutions(cpu_path)
    assert integer == total - len(expected), (integer, total, sorted(expected))
    return len(expected)


def assert_cpu_int8_runs_integer_convolutions(path) -> None:
    """>= 90 % of the network's convolutions are QLinearConv/ConvInteger in ONNX Runtime's optimised graph, and
    every quantized one whose input channels come in fours is shaped for MLAS's symmetric integer kernel."""
    from bisegunet_training.quantize import integer_convolutions

    integer, total = integer_convolutions(path)
    assert total > 20 and integer >= 0.9 * total, (integer, total)
    assert_shaped_for_the_integer_kernel(onnx.load(str(path)).graph, quantized_only=True)


def assert_shaped_for_the_integer_kernel(graph: onnx.GraphProto, quantized_only: bool = False) -> int:
    """integer_kernels' promise: each network convolution (each quantized one, with `quantized_only`) is
    ungrouped or depthwise, and with input channels in fours has as many outputs as the kernel takes.
    Returns how many read input channels not in fours (the stem's streams reading the image)."""
    from bisegunet_training.integer_kernels import INPUT_CHANNEL_MULTIPLE, attribute, constants, wide_channels

    weights = constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    short = 0
    for node in graph.node:
        if node.op_type != "Conv" or node.name.startswith("uint8_io/"):
            continue
        weight = node.input[1]
        if quantized_only:
            if weight not in producer or producer[weight].op_type != "DequantizeLinear":
                continue
            weight = producer[weight].input[0]
        out_channels, in_channels = weights[weight].dims[:2]
        group = attribute(node, "group", 1)
        assert group == 1 or in_channels == 1, node.name
        if in_channels % INPUT_CHANNEL_MULTIPLE:
            short += 1
        elif group == 1:
            assert wide_channels(out_channels) == out_channels, (node.name, out_channels)
    return short


@pytest.mark.parametrize("overrides, reading_the_image", [([], 3), (["entry_stride=4", "output_stride=8"], 1)],
                         ids=["tiny", "fast"])
def test_widened_convolutions_compute_what_the_network_did(overrides, reading_the_image, tmp_path):
    """integer_kernels.widen_convolutions on BiSegUNet: grouped convolutions ungrouped, narrow ones given zero
    filters up to the kernel's width, Slices of the real channels where a non-convolution reads them; the
    logits are the same. Edge cases on small graphs: test_integer_kernels.py."""
    import onnxruntime as ort

    from bisegunet_training.integer_kernels import widen_convolutions
    from bisegunet_training.quantize import float_head_and_tail

    path = tmp_path / "m.onnx"
    assert export_main(["--checkpoint", str(write_checkpoint(tmp_path / "m.pt", overrides)), "--out", str(path),
                        "--logits", "--dynamic-batch"]) == 0
    model = onnx.load(str(path))
    widened = onnx.load(str(path))
    changed = widen_convolutions(widened.graph, excluded=set(float_head_and_tail(model.graph)))
    widened = onnx.shape_inference.infer_shapes(widened)
    onnx.checker.check_model(widened, full_check=True)
    assert len(changed) > 10 and any(n.op_type == "Slice" for n in widened.graph.node)
    assert assert_shaped_for_the_integer_kernel(widened.graph) == reading_the_image   # the stem's streams or the entry
    frames = np.stack([render_scene(81, i, H, W)[0] for i in range(2)])
    original, wide = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                      .run(["logits"], {"pixels": frames})[0] for m in (model, widened))
    np.testing.assert_allclose(wide, original, rtol=1e-4, atol=1e-4)


def test_shipped_models_are_format_2_and_the_int8_ones_are_what_their_runtimes_take():
    from pathlib import Path

    from bisegunet_ros.model_info import FORMAT_VERSION, ModelInfo
    from bisegunet_ros.resources import SHIPPED_MODEL

    models = Path(__file__).resolve().parents[1] / "models"
    fp32, tensorrt, cpu = (f"{SHIPPED_MODEL}{suffix}" for suffix in (".onnx", ".int8.onnx", ".int8-cpu.onnx"))
    assert_symmetric_int8_qdq_with_uint8_ends(onnx.load(str(models / tensorrt)))
    assert_cpu_int8_runs_integer_convolutions(models / cpu)
    assert_only_the_slow_convolutions_float(models / fp32, models / cpu)
    for name, target in ((fp32, None), (tensorrt, "tensorrt"), (cpu, "cpu")):
        assert ModelInfo.from_onnx(models / name).int8_target == target   # refuses anything but the current format
        model = onnx.load(str(models / name))
        assert {p.key: p.value for p in model.metadata_props}["bisegunet.format_version"] == str(FORMAT_VERSION)
        softmax_axes = [a.i for n in model.graph.node if n.name.startswith("uint8_io/") and n.op_type == "Softmax"
                        for a in n.attribute if a.name == "axis"]
        assert softmax_axes in ([], [3])      # issue 23: no Softmax over NCHW's class axis (NHWC tail: the last)


def test_quantize_writes_a_symmetric_tensorrt_model_and_an_integer_cpu_model_beside_it(exported, tmp_path):
    """TensorRT's explicit quantization: every Q/DQ int8 with zero point 0, biases left float. The CPU one:
    uint8 activations, integer convolutions in ONNX Runtime; the ONNX Runtime backend runs it when given either."""
    from bisegunet_training.quantize import main as quantize_main

    tensorrt = tmp_path / "tiny.int8.onnx"
    assert quantize_main(["--onnx", str(exported), "--out", str(tensorrt), "--frames", "4"]) == 0
    cpu = tmp_path / "tiny.int8-cpu.onnx"
    assert_symmetric_int8_qdq_with_uint8_ends(onnx.load(str(tensorrt)))
    assert_cpu_int8_runs_integer_convolutions(cpu)
    assert assert_only_the_slow_convolutions_float(exported, cpu) == 1   # tiny's 7x7 stem stream (3 input channels)
    graph = onnx.load(str(tensorrt)).graph       # TensorRT's model quantizes every convolution of the network
    producer = {o: n for n in graph.node for o in n.output}
    assert all(producer[n.input[1]].op_type == "DequantizeLinear" for n in graph.node
               if n.op_type == "Conv" and not n.name.startswith("uint8_io/"))
    zero_points = [i for i in onnx.load(str(cpu)).graph.initializer if i.data_type == onnx.TensorProto.UINT8]
    assert zero_points and any(numpy_helper.to_array(z).any() for z in zero_points)   # asymmetric activations
    backend = load_backend(tensorrt, "onnxruntime")
    assert backend.model_path == cpu and backend.info.int8_target == "cpu"
    assert backend.precision == "int8" and backend.info.classes == CITYSCAPES
    frames = [render_scene(5, i, H, W)[0] for i in range(2)]
    fp32 = SegmentationPipeline(load_backend(exported, "onnxruntime")).run(frames)
    int8 = SegmentationPipeline(backend).run(frames)
    agreement = np.mean([(a.labels == b.labels).mean() for a, b in zip(fp32, int8)])
    assert agreement > 0.88      # measured 0.912 (ONNX Runtime 1.32, x86 CPU); the margin is for other CPUs' kernels


def test_convolutions_left_float_keep_their_own_float_weights_when_biases_coincide(tmp_path):
    """An untrained network's folded biases are all zero, so they end up shared (torch's exporter writes each
    repeat as an Identity of the first) and the quantizer hands the float convolutions a dequantized copy
    (no NCHWc kernel); quantize.own_float_inputs gives them their own back."""
    from bisegunet_training.quantize import quantize

    fresh = tmp_path / "fresh.onnx"
    assert export_main(["--checkpoint", str(write_checkpoint(tmp_path / "fresh.pt", fresh_norms=True)),
                        "--out", str(fresh)]) == 0
    cpu = quantize(fresh, tmp_path / "fresh.int8-cpu.onnx", frames=2, target="cpu")
    assert assert_only_the_slow_convolutions_float(fresh, cpu) == 1
    frames = np.stack([render_scene(79, 0, H, W)[0]])
    agreement = (load_backend(cpu, "onnxruntime").infer(frames).labels ==
                 load_backend(fresh, "onnxruntime").infer(frames).labels).mean()
    assert agreement > 0.8


def test_missing_and_corrupt_checkpoints_are_named(tmp_path, caplog):
    assert export_main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "none.pt: no such checkpoint" in caplog.text
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert export_main(["--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "bad.pt: not a readable checkpoint" in caplog.text


def test_format_1_file_is_rewrapped_with_its_own_normalisation(checkpoint, tmp_path):
    """`--from-onnx`: what models/ went through; labels equal the old float graph's argmax on normalise()d frames."""
    import json

    import onnxruntime as ort

    from bisegunet_ros.model_info import PREFIX
    from bisegunet_training.export import export_float_core, model_info

    model, state = model_from_checkpoint(checkpoint)
    old = export_float_core(model, H, W, dynamic_batch=True)
    props = model_info(state, H, W, True, True).to_metadata()
    onnx.helper.set_model_props(old, {**props, PREFIX + "format_version": json.dumps(1)})
    onnx.save(old, str(tmp_path / "old.onnx"))
    new = tmp_path / "new.onnx"
    assert export_main(["--from-onnx", str(tmp_path / "old.onnx"), "--out", str(new)]) == 0
    frames = np.stack([render_scene(77, i, H, W)[0] for i in range(2)])
    normalised = normalise(frames, MEAN, STD).transpose(0, 3, 1, 2).copy()
    old_logits = ort.InferenceSession(str(tmp_path / "old.onnx")).run(None, {"input": normalised})[0]
    assert (load_backend(new, "onnxruntime").infer(frames).labels == old_logits.argmax(1)).mean() >= 0.9999
    again = tmp_path / "again.onnx"              # a format-2 file: its network re-wrapped with today's head and tail
    assert export_main(["--from-onnx", str(new), "--out", str(again)]) == 0
    np.testing.assert_array_equal(load_backend(again, "onnxruntime").infer(frames).labels,
                                  load_backend(new, "onnxruntime").infer(frames).labels)
    assert {p.key: p.value for p in onnx.load(str(again)).metadata_props} == {
        p.key: p.value for p in onnx.load(str(new)).metadata_props}


@pytest.mark.parametrize("preset, overrides", [("tiny", ["entry_stride=2", "output_stride=4"]), ("fast", [])],
                         ids=["entry2_os4", "fast_entry4_os8"])
def test_strided_entry_and_decoder_export_with_full_size_logits(preset, overrides, tmp_path):
    """entry_stride and output_stride: the graph's logits are the input size and match PyTorch's, packing is exact."""
    strided = write_checkpoint(tmp_path / "strided.pt", overrides, preset=preset)
    out = tmp_path / "strided.onnx"
    assert export_main(["--checkpoint", str(strided), "--out", str(out), "--dynamic-batch", "--logits"]) == 0
    assert load_backend(out, "onnxruntime").infer(np.zeros((1, H, W, 3), np.uint8)).logits.shape == (1, 19, H, W)
    assert_onnxruntime_matches_pytorch(out, strided)
    assert_packed_round_trip(strided, tmp_path / "strided.packed.bin")
    graph = onnx.load(str(out)).graph
    shapes = {n.output[0] for n in graph.node if n.op_type == "Shape"}
    copies = [n.name for n in graph.node if n.op_type == "Slice" and n.input[0] not in shapes]
    assert not copies, f"{H}x{W} needs no padding, yet the graph crops its logits: {copies}"
    from bisegunet_training.quantize import quantize

    int8 = quantize(out, tmp_path / "strided.int8-cpu.onnx", frames=2, target="cpu")
    assert_cpu_int8_runs_integer_convolutions(int8)
    graph = onnx.load(str(int8)).graph
    producer = {o: n for n in graph.node for o in n.output}
    upsample = producer[next(n for n in graph.node if n.op_type == "ArgMax").input[0]]
    consumers = {n.op_type for n in graph.node if upsample.output[0] in n.input}
    to_nhwc = producer[upsample.input[0]]          # the tail's: small logits to NHWC, then the Resize (issue 23)
    assert upsample.op_type == "Resize" and upsample.name.startswith("uint8_io/") and to_nhwc.op_type == "Transpose"
    assert producer[to_nhwc.input[0]].op_type == "DequantizeLinear"
    assert "QuantizeLinear" not in consumers      # the small logits upsampled in float, like the tail
    again = tmp_path / "again.onnx"               # re-wrapped from its float network: the same graph and labels
    assert export_main(["--from-onnx", str(out), "--out", str(again), "--logits"]) == 0
    assert [n.op_type for n in onnx.load(str(again)).graph.node] == [n.op_type for n in onnx.load(str(out)).graph.node]
    frames = np.stack([render_scene(78, 0, H, W)[0]])
    np.testing.assert_array_equal(load_backend(again, "onnxruntime").infer(frames).labels,
                                  load_backend(out, "onnxruntime").infer(frames).labels)


@pytest.mark.parametrize("preset", ["small", "fast"])
def test_int8_models_of_the_presets_issue_23_times(preset, tmp_path):
    """Issue 23's INT8 goal names `small` and `fast`: the TensorRT model symmetric with zero point 0, the CPU one
    running >= 90 % of the network's convolutions as integer in ONNX Runtime, all but quantize's slow ones."""
    from bisegunet_training.quantize import quantize

    fp32 = tmp_path / f"{preset}.onnx"
    assert export_main(["--checkpoint", str(write_checkpoint(tmp_path / "m.pt", preset=preset)), "--out", str(fp32),
                        "--dynamic-batch"]) == 0
    assert_symmetric_int8_qdq_with_uint8_ends(onnx.load(str(quantize(fp32, tmp_path / "m.int8.onnx", frames=2))))
    cpu = quantize(fp32, tmp_path / "m.int8-cpu.onnx", frames=2, target="cpu")
    assert_cpu_int8_runs_integer_convolutions(cpu)
    assert_only_the_slow_convolutions_float(fp32, cpu)


def test_a_size_off_the_network_stride_exports_with_constant_padding(tmp_path):
    """A network size that is no multiple of the network stride (a 360-row camera, a toy size): the graph pads
    and crops by constants, passes the TensorRT op check (no Mod) and matches PyTorch."""
    from bisegunet_training.export import export_onnx, model_info

    checkpoint = write_checkpoint(tmp_path / "strided.pt", ["entry_stride=2", "output_stride=2"])
    model, state = model_from_checkpoint(checkpoint)
    height, width = H - 8, W + 8        # the network stride is 32 here
    out = tmp_path / "odd.onnx"
    export_onnx(model, out, height, width, model_info(state, height, width, True, False))
    assert not {n.op_type for n in onnx.load(str(out)).graph.node} & {"Mod", "If"}
    pixels = np.stack([render_scene(3, 0, height, width)[0]])
    with torch.no_grad():
        expected = model(torch.from_numpy(normalise(pixels, MEAN, STD).transpose(0, 3, 1, 2).copy())).argmax(1)
    assert (load_backend(out, "onnxruntime").infer(pixels).labels == expected.numpy()).mean() >= 0.999
