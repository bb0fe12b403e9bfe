"""The pure segmentation pipeline: decoded RGB frames in, labels and derived images out.

The ROS node, the rosbag evaluator and the tests all drive this same code, so what is measured
offline is what runs on the vehicle. Nothing here knows about ROS messages. The model does
normalisation, argmax and confidence in its graph (model format 2), so the host only packs uint8
frames (resizing them when the camera's size differs from the network's) and, when asked, maps
and resizes the uint8 labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .backends.base import Backend
from .classes import ClassTable

OUTPUT_RESOLUTIONS = ("input", "network")


@dataclass
class StageTimes:
    """Milliseconds spent per stage for one frame (batched stages are split evenly across frames)."""

    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass
class Segmentation:
    """Result for one frame. `labels` is uint8 class ids at the output resolution."""

    labels: np.ndarray
    confidence: np.ndarray | None          # uint8, max softmax probability x 255, same size as labels
    times: StageTimes = field(default_factory=StageTimes)


class SegmentationPipeline:
    """Preprocess, infer (one batched call for several frames), postprocess.

    `class_filter` lists class ids mapped to `background_id` in every output; `output_resolution`
    is "input" (labels resized to the frame with nearest neighbour: ids are never interpolated) or
    "network".
    """

    def __init__(self, backend: Backend, output_resolution: str = "input", class_filter: tuple[int, ...] = (),
                 background_id: int = 0):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got {output_resolution!r}")
        self.backend = backend
        self.info = backend.info
        self.output_resolution = output_resolution
        num_classes = len(self.info.classes)
        if not 0 <= background_id < num_classes:
            raise ValueError(f"background_id {background_id} is not a class id of this model (0..{num_classes - 1})")
        # class filter: one uint8 lookup (cv2.LUT) on the labels the graph gives
        self._lut = np.arange(256, dtype=np.uint8)
        self._lut[list(class_filter)] = background_id
        self._filter = bool(class_filter)
        self._bgr = self.info.channel_order == "bgr"
        self._palette = self.info.classes.palette_array()

    @property
    def classes(self) -> ClassTable:
        return self.info.classes

    @property
    def network_size(self) -> tuple[int, int]:
        return self.info.input_height, self.info.input_width

    def preprocess(self, frames: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames of any size -> uint8 (N, H, W, 3) at the network size, in the model's channel order.

        A single frame already at the network size is passed on without a copy; other frames are
        resized (uint8, area when shrinking, linear when enlarging) straight into the batch.
        """
        height, width = self.network_size
        if len(frames) == 1 and frames[0].shape[:2] == (height, width) and not self._bgr:
            return np.ascontiguousarray(frames[0])[None]
        batch = np.empty((len(frames), height, width, 3), np.uint8)
        for i, rgb in enumerate(frames):
            if rgb.shape[:2] != (height, width):
                shrink = rgb.shape[0] > height or rgb.shape[1] > width
                cv2.resize(rgb, (width, height), dst=batch[i],
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            else:
                batch[i] = rgb
            if self._bgr:
                batch[i] = batch[i, ..., ::-1]
        return batch

    def postprocess(self, labels: np.ndarray, confidence: np.ndarray | None,
                    frame_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 labels (and confidence) of one frame from the backend -> at the output size (no copy when equal).

        Class ids are never interpolated (nearest neighbour); the confidence is resized linearly.
        """
        labels = cv2.LUT(labels, self._lut) if self._filter else labels
        if self.output_resolution == "input" and labels.shape != frame_size:
            size = (frame_size[1], frame_size[0])
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
            if confidence is not None:
                confidence = cv2.resize(confidence, size, interpolation=cv2.INTER_LINEAR)
        return labels, confidence

    def run(self, frames: list[np.ndarray], want_confidence: bool = False,
            decode_ms: list[float] | None = None) -> list[Segmentation]:
        """Segment RGB frames with one backend call per `backend.max_batch` frames; the backend computes
        the confidence only with `want_confidence` (the node asks while someone subscribes to it)."""
        results = []
        step = self.backend.max_batch
        for start in range(0, len(frames), step):
            chunk = frames[start:start + step]
            t0 = time.perf_counter()
            batch = self.preprocess(chunk)
            t1 = time.perf_counter()
            outputs = self.backend.infer(batch, confidence=want_confidence)
            t2 = time.perf_counter()
            for i, rgb in enumerate(chunk):
                t3 = time.perf_counter()
                labels, confidence = self.postprocess(
                    outputs.labels[i], outputs.confidence[i] if want_confidence else None, rgb.shape[:2])
                times = StageTimes(
                    decode_ms=decode_ms[start + i] if decode_ms else 0.0,
                    preprocess_ms=(t1 - t0) * 1e3 / len(chunk), inference_ms=(t2 - t1) * 1e3 / len(chunk),
                    postprocess_ms=(time.perf_counter() - t3) * 1e3)
                results.append(Segmentation(labels, confidence, times))
        return results

    # Derived images, computed only when someone needs them.

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB palette image of a label image."""
        return self._palette[labels]

    def overlay(self, rgb: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
        """RGB blend of the frame and the palette colours; `alpha` is the colours' weight."""
        colours = self.colorize(labels)
        if rgb.shape[:2] != labels.shape:
            rgb = cv2.resize(rgb, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_AREA)
        return cv2.addWeighted(colours, alpha, np.ascontiguousarray(rgb), 1.0 - alpha, 0.0)

    def class_mask(self, labels: np.ndarray, class_id: int) -> np.ndarray:
        """mono8 mask: 255 where the class is, 0 elsewhere."""
        return (labels == class_id).view(np.uint8) * np.uint8(255)

    def class_fractions(self, labels: np.ndarray) -> np.ndarray:
        """Fraction of the pixels given to each class (float32, one per class)."""
        counts = np.bincount(labels.ravel(), minlength=len(self.classes))[: len(self.classes)]
        return (counts / max(labels.size, 1)).astype(np.float32)
