"""ONNX Runtime backend and the metadata contract, on a hand-built model."""
from __future__ import annotations

import numpy as np
import pytest

from bisegunet_ros.backends import load_backend
from bisegunet_ros.model_info import ModelError
from tiny_onnx import reference_logits, tiny_info, write_tiny_onnx


def test_auto_falls_back_to_onnxruntime_and_matches_numpy(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "auto")
    assert backend.name == "onnxruntime-cpu"
    assert backend.info == tiny_info()
    batch = np.random.default_rng(1).normal(size=(2, 3, 32, 64)).astype(np.float32)
    np.testing.assert_allclose(backend.infer(batch), reference_logits(batch, 19), rtol=1e-5, atol=1e-5)


def test_fixed_batch_model_refuses_two_frames(tmp_path):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx", dynamic_batch=False), "onnxruntime")
    assert backend.max_batch == 1
    with pytest.raises(ValueError, match="batch of 2 frames"):
        backend.infer(np.zeros((2, 3, 32, 64), np.float32))


@pytest.mark.parametrize("batch", [np.zeros((1, 3, 32, 64), np.float64), np.zeros((1, 3, 64, 32), np.float32),
                                   np.zeros((3, 32, 64), np.float32)])
def test_wrong_input_is_refused_with_the_expected_shape(tmp_path, batch):
    backend = load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "onnxruntime")
    with pytest.raises(ValueError, match=r"float32 \(N, 3, 32, 64\)"):
        backend.infer(batch)


def test_missing_corrupt_and_metadata_free_models_name_file_and_fix(tmp_path):
    with pytest.raises(ModelError, match="nope.onnx: model file not found"):
        load_backend(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="corrupt.onnx: not a loadable ONNX model"):
        load_backend(corrupt)
    bare = write_tiny_onnx(tmp_path / "bare.onnx", metadata=False)
    with pytest.raises(ModelError, match="bare.onnx: ONNX metadata lacks .*bisegunet-export"):
        load_backend(bare)


def test_tensorrt_asked_for_where_absent_says_why(tmp_path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here; this test is for machines without it")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="tensorrt.*not installed"):
        load_backend(write_tiny_onnx(tmp_path / "m.onnx"), "tensorrt")
