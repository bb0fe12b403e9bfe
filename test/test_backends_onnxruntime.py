"""ONNX Runtime backend and the metadata contract (model format 2), on a hand-built model."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from bisegunet_ros.backends import load_backend
from bisegunet_ros.backends.base import InferenceOutputs
from bisegunet_ros.model_info import ModelError, ModelInfo
from tiny_onnx import reference_logits, tiny_info, write_tiny_onnx


def _pixels(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 64, 3), dtype=np.uint8)


def test_auto_falls_back_to_onnxruntime_and_matches_numpy(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx", logits=True), "auto")
    assert backend.name == "onnxruntime-cpu"
    assert backend.info == tiny_info()
    pixels = _pixels(2)
    out = backend.infer(pixels)
    assert isinstance(out, InferenceOutputs)
    assert out.labels.dtype == np.uint8 and out.confidence.dtype == np.uint8 and out.labels.shape == (2, 32, 64)
    reference = reference_logits(pixels, 19)
    np.testing.assert_allclose(out.logits, reference, rtol=1e-4, atol=1e-4)
    assert (out.labels == reference.argmax(1)).mean() > 0.9999


def test_outputs_hold_exactly_the_frames_of_the_call(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "onnxruntime")
    three, one = backend.infer(_pixels(3)), backend.infer(_pixels(1, seed=2))
    assert three.labels.shape[0] == three.confidence.shape[0] == 3
    assert one.labels.shape[0] == 1 and one.logits is None     # exported without --logits


def test_fixed_batch_model_refuses_two_frames(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx", dynamic_batch=False), "onnxruntime")
    assert backend.max_batch == 1
    with pytest.raises(ValueError, match="batch of 2 frames"):
        backend.infer(np.zeros((2, 32, 64, 3), np.uint8))


@pytest.mark.parametrize("pixels", [np.zeros((1, 32, 64, 3), np.float32), np.zeros((1, 64, 32, 3), np.uint8),
                                    np.zeros((1, 3, 32, 64), np.uint8), np.zeros((32, 64, 3), np.uint8)])
def test_wrong_input_is_refused_with_the_expected_shape(tmp_path, pixels):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "onnxruntime")
    with pytest.raises(ValueError, match=r"uint8 \(N, 32, 64, 3\) RGB"):
        backend.infer(pixels)


def test_missing_corrupt_and_metadata_free_models_name_file_and_fix(tmp_path):
    with pytest.raises(ModelError, match="nope.onnx: model file not found"):
        load_backend(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="corrupt.onnx: not a loadable ONNX model"):
        load_backend(corrupt)
    with pytest.raises(ModelError, match="corrupt.onnx: not a loadable ONNX model"):
        ModelInfo.from_onnx(corrupt)
    bare = write_tiny_onnx(tmp_path / "bare.onnx", metadata=False)
    with pytest.raises(ModelError, match="bare.onnx: ONNX metadata lacks .*bisegunet-export"):
        load_backend(bare)


def test_format_1_model_is_refused_with_the_re_export_command(tmp_path):
    path = write_tiny_onnx(tmp_path / "old.onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "bisegunet.format_version":
            prop.value = json.dumps(1)
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="old.onnx: metadata format 1 .* Re-export it with `bisegunet-export"):
        load_backend(path, "onnxruntime")


def test_from_onnx_reads_what_the_exporter_wrote(tmp_path):
    path = write_tiny_onnx(tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert ModelInfo.from_onnx(path) == ModelInfo.from_metadata(props, str(path)) == tiny_info()


def test_tensorrt_asked_for_where_absent_says_why(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here; this test is for machines without it")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="tensorrt.*not installed"):
        load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "tensorrt")
