"""Export: ONNX with folded binary weights and metadata, packed 1-bit weights, INT8, bad input."""
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
from bisegunet_training.model import binary_layers, build_model, load_model_config, set_binarized
from bisegunet_training.packed import PackedError, fp32_bytes, load_packed, save_packed

H, W = 64, 128
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_checkpoint(path, overrides: list[str] = ()):
    """A binarized tiny checkpoint with non-trivial BatchNorm statistics, so folding is really exercised:
    running statistics measured on synthetic scenes (as training leaves them), random scales."""
    torch.manual_seed(0)
    cfg = load_model_config("tiny", overrides)
    model = build_model(cfg)
    set_binarized(model, True)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = None                                    # cumulative average over the batches below
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
                           "command": "bisegunet-train --config test", "commit": "abc123"})
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(out), "--dynamic-batch"]) == 0
    return out


def test_graph_is_valid_and_uses_only_tensorrt_ops(exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert {n.op_type for n in model.graph.node} <= tensorrt_ops()
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}      # folded


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
    assert backend.max_batch > 1           # dynamic batch


def assert_onnxruntime_matches_pytorch(exported, checkpoint):
    """Tolerance: logits within 1e-3 absolute (FP32, different kernels); labels of >= 99.9 % of pixels equal."""
    model, _ = model_from_checkpoint(checkpoint)
    pipeline = SegmentationPipeline(load_backend(exported, "onnxruntime"), output_resolution="network")
    frames = [render_scene(123, i, H, W)[0] for i in range(6)]
    batch = pipeline.preprocess(frames)
    ort_logits = pipeline.backend.infer(batch)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(ort_logits, torch_logits, atol=1e-3, rtol=0)
    assert (ort_logits.argmax(1) == torch_logits.argmax(1)).mean() >= 0.999


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
    assert export_main(["--checkpoint", str(ws), "--out", str(out), "--dynamic-batch"]) == 0
    assert_onnxruntime_matches_pytorch(out, ws)
    assert_packed_round_trip(ws, tmp_path / "ws.packed.bin")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 an old npz", b"BSGPACK1\xff\xff\x00\x00 cut"])
def test_unreadable_packed_file_is_named(tmp_path, content):
    path = tmp_path / "bad.packed.bin"
    path.write_bytes(content)
    with pytest.raises(PackedError, match="bad.packed.bin: "):
        load_packed(path)


def test_int8_model_runs_with_its_metadata(exported, tmp_path):
    from bisegunet_training.quantize import quantize

    out = quantize(exported, tmp_path / "tiny.int8.onnx", frames=4)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    backend = load_backend(out, "onnxruntime")
    assert backend.precision == "int8" and backend.info.classes == CITYSCAPES
    frames = [render_scene(5, i, H, W)[0] for i in range(2)]
    fp32 = SegmentationPipeline(load_backend(exported, "onnxruntime")).run(frames)
    int8 = SegmentationPipeline(backend).run(frames)
    agreement = np.mean([(a.labels == b.labels).mean() for a, b in zip(fp32, int8)])
    assert agreement > 0.5


def test_missing_and_corrupt_checkpoints_are_named(tmp_path, caplog):
    assert export_main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "none.pt: no such checkpoint" in caplog.text
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert export_main(["--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "bad.pt: not a readable checkpoint" in caplog.text
