"""The pure pipeline on a hand-built ONNX model whose labels are known in advance."""
from __future__ import annotations

import numpy as np
import pytest

from bisegunet_ros.backends import load_backend
from bisegunet_ros.pipeline import SegmentationPipeline
from tiny_onnx import reference_logits, write_tiny_onnx


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return load_backend(write_tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx"), "onnxruntime")


def _frames(n, height=32, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def test_labels_equal_numpy_reference_at_network_size(backend):
    pipeline = SegmentationPipeline(backend)
    (rgb,) = _frames(1)
    batch = pipeline.preprocess([rgb])
    assert batch.dtype == np.uint8 and batch.shape == (1, 32, 64, 3)
    np.testing.assert_array_equal(batch[0], rgb)
    expected = reference_logits(rgb[None], 19)[0].argmax(0)
    (result,) = pipeline.run([rgb])
    assert result.labels.dtype == np.uint8
    assert (result.labels == expected).mean() > 0.9999


def test_results_own_their_arrays(backend):
    """Backends hand over arrays the caller owns: a result must survive the next call."""
    pipeline = SegmentationPipeline(backend, output_resolution="network")
    first, second = _frames(1, seed=7), _frames(1, seed=8)
    (a,) = pipeline.run(first, want_confidence=True)
    kept_labels, kept_confidence = a.labels.copy(), a.confidence.copy()
    pipeline.run(second, want_confidence=True)
    np.testing.assert_array_equal(a.labels, kept_labels)
    np.testing.assert_array_equal(a.confidence, kept_confidence)


def test_batched_call_equals_one_frame_at_a_time(backend):
    pipeline = SegmentationPipeline(backend)
    frames = _frames(3, seed=2)
    batched = pipeline.run(frames)
    single = [pipeline.run([f])[0] for f in frames]
    for a, b in zip(batched, single):
        np.testing.assert_array_equal(a.labels, b.labels)


def test_input_resolution_upsamples_with_nearest_neighbour_only(backend):
    (rgb,) = _frames(1, height=96, width=200, seed=3)
    at_input = SegmentationPipeline(backend, output_resolution="input").run([rgb], want_confidence=True)[0]
    at_network = SegmentationPipeline(backend, output_resolution="network").run([rgb])[0]
    assert at_input.labels.shape == (96, 200) and at_input.confidence.shape == (96, 200)
    assert at_network.labels.shape == (32, 64)
    assert set(np.unique(at_input.labels)) <= set(np.unique(at_network.labels))


def test_confidence_is_max_softmax_times_255(backend):
    pipeline = SegmentationPipeline(backend, output_resolution="network")
    (rgb,) = _frames(1, seed=4)
    logits = reference_logits(rgb[None], 19)[0]
    softmax = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    (result,) = pipeline.run([rgb], want_confidence=True)
    assert np.abs(result.confidence.astype(int) - (softmax.max(0) * 255).astype(int)).max() <= 1
    assert result.confidence.min() >= 255 // 19


def test_class_filter_maps_to_background_in_every_output(backend):
    frames = _frames(2, seed=5)
    unfiltered = SegmentationPipeline(backend).run(frames)[0].labels
    present = np.unique(unfiltered)
    filtered_class = int(present[present != 0][0])
    pipeline = SegmentationPipeline(backend, class_filter=(filtered_class,), background_id=0)
    result = pipeline.run(frames)[0]
    assert filtered_class not in result.labels
    np.testing.assert_array_equal(result.labels, np.where(unfiltered == filtered_class, 0, unfiltered))
    assert not pipeline.class_mask(result.labels, filtered_class).any()
    assert pipeline.class_fractions(result.labels)[filtered_class] == 0


def test_class_filter_fixed_at_export_is_in_the_graph(tmp_path):
    frames = _frames(2, seed=5)
    plain = SegmentationPipeline(load_backend(write_tiny_onnx(tmp_path / "a.onnx"), "onnxruntime")).run(frames)
    present = np.unique(plain[0].labels)
    filtered_class = int(present[present != 0][0])
    model = write_tiny_onnx(tmp_path / "b.onnx", class_filter=(filtered_class,))
    filtered = SegmentationPipeline(load_backend(model, "onnxruntime")).run(frames)
    for a, b in zip(plain, filtered):
        np.testing.assert_array_equal(b.labels, np.where(a.labels == filtered_class, 0, a.labels))


def test_derived_images(backend):
    pipeline = SegmentationPipeline(backend)
    (rgb,) = _frames(1, seed=6)
    labels = pipeline.run([rgb])[0].labels
    colour = pipeline.colorize(labels)
    assert colour.shape == (32, 64, 3)
    cls = int(labels[0, 0])
    assert tuple(colour[0, 0]) == pipeline.classes.palette[cls]
    mask = pipeline.class_mask(labels, cls)
    assert set(np.unique(mask)) <= {0, 255} and mask[0, 0] == 255
    assert pipeline.overlay(rgb, labels, 1.0).tolist() == colour.tolist()
    assert pipeline.class_fractions(labels).sum() == pytest.approx(1.0)


def test_bad_output_resolution_is_refused(backend):
    with pytest.raises(ValueError, match="output_resolution"):
        SegmentationPipeline(backend, output_resolution="half")
