"""The pure segmentation pipeline: decoded RGB frames in, labels and derived images out.

The ROS node, the rosbag evaluator and the tests all drive this same code, so what is measured
offline is what runs on the vehicle. Nothing here knows about ROS messages.
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
    """Result for one frame. `labels` is uint8 (uint16 beyond 255 classes) at the output resolution."""

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
        self.label_dtype = np.uint8 if num_classes <= 256 else np.uint16
        self.label_map = np.arange(num_classes, dtype=self.label_dtype)
        self.label_map[list(class_filter)] = background_id
        # (x / 255 - mean) / std folded into one multiply-add per channel
        self._scale = (1.0 / (255.0 * np.asarray(self.info.std, np.float32))).astype(np.float32)
        self._offset = (-np.asarray(self.info.mean, np.float32) / np.asarray(self.info.std, np.float32))
        self._bgr = self.info.channel_order == "bgr"
        self._palette = self.info.classes.palette_array()

    @property
    def classes(self) -> ClassTable:
        return self.info.classes

    @property
    def network_size(self) -> tuple[int, int]:
        return self.info.input_height, self.info.input_width

    def preprocess(self, frames: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames of any size -> normalised float32 (N, 3, H, W) at the network size."""
        height, width = self.network_size
        batch = np.empty((len(frames), 3, height, width), np.float32)
        for i, rgb in enumerate(frames):
            if rgb.shape[:2] != (height, width):
                shrink = rgb.shape[0] > height or rgb.shape[1] > width
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            if self._bgr:
                rgb = rgb[..., ::-1]
            hwc = rgb.astype(np.float32) * self._scale + self._offset
            batch[i] = hwc.transpose(2, 0, 1)
        return batch

    def postprocess(self, logits: np.ndarray, frame_size: tuple[int, int],
                    want_confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (C, h, w) of one frame -> labels (and confidence) at the output resolution."""
        labels = self.label_map[logits.argmax(axis=0)]
        confidence = None
        if want_confidence:
            peak = logits.max(axis=0)
            # max softmax probability = 1 / sum(exp(l - max))
            confidence = (255.0 / np.exp(logits - peak).sum(axis=0)).astype(np.uint8)
        if self.output_resolution == "input" and labels.shape != frame_size:
            size = (frame_size[1], frame_size[0])
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
            if confidence is not None:
                confidence = cv2.resize(confidence, size, interpolation=cv2.INTER_LINEAR)
        return labels, confidence

    def run(self, frames: list[np.ndarray], want_confidence: bool = False,
            decode_ms: list[float] | None = None) -> list[Segmentation]:
        """Segment RGB frames with one backend call per `backend.max_batch` frames."""
        results = []
        step = self.backend.max_batch
        for start in range(0, len(frames), step):
            chunk = frames[start:start + step]
            t0 = time.perf_counter()
            batch = self.preprocess(chunk)
            t1 = time.perf_counter()
            logits = self.backend.infer(batch)
            t2 = time.perf_counter()
            for i, rgb in enumerate(chunk):
                t3 = time.perf_counter()
                labels, confidence = self.postprocess(logits[i], rgb.shape[:2], want_confidence)
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
