"""sensor_msgs/Image and CompressedImage to arrays, and arrays to sensor_msgs/Image: the one place.

The codecs take message *fields*, not message objects, so they run without ROS; `decode_message`,
`decode_labels` and `image_message` wrap them for whole messages, either rclpy's classes (the node)
or a rosbags type store's (bags), so the node, the rosbag tools and the tests share one implementation. Decoding is numpy + OpenCV rather than cv_bridge:
cv_bridge is optional on the vehicle (and not installable in the venv), and a strided numpy view
honours row padding and byte order without copying where no conversion is needed.

Layouts follow sensor_msgs/image_encodings.hpp: ``yuv422`` is UYVY (``uyvy`` is its alias),
``yuv422_yuy2`` is YUYV (``yuyv`` its alias); ``bayer_<pattern>8`` names the top-left 2x2 block.
"""
from __future__ import annotations

import array as pyarray
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """A frame that cannot be decoded; the message names the problem."""


@dataclass(frozen=True)
class _Layout:
    channels: int                                  # values per pixel (YUV 4:2:2: one chroma + one luma byte)
    dtype: type                                    # value type before byte order: np.uint8 or np.uint16
    to_rgb: Callable[[np.ndarray], np.ndarray]     # (H, W, channels) view -> (H, W, 3) uint8 RGB


def _cvt(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda view: cv2.cvtColor(view, code)


def _cvt_plane(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda view: cv2.cvtColor(view[..., 0], code)


def _mono16_to_rgb(view: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((view[..., 0] >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)


# OpenCV names a Bayer pattern by the second row's second and third pixels, ROS by the top-left
# 2x2 block, so ROS rggb is OpenCV BG (and so on); checked against synthetic mosaics in the tests.
_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, np.uint8, lambda view: view),
    "bgr8": _Layout(3, np.uint8, _cvt(cv2.COLOR_BGR2RGB)),
    "rgba8": _Layout(4, np.uint8, _cvt(cv2.COLOR_RGBA2RGB)),
    "bgra8": _Layout(4, np.uint8, _cvt(cv2.COLOR_BGRA2RGB)),
    "mono8": _Layout(1, np.uint8, _cvt_plane(cv2.COLOR_GRAY2RGB)),
    "mono16": _Layout(1, np.uint16, _mono16_to_rgb),
    "yuv422": _Layout(2, np.uint8, _cvt(cv2.COLOR_YUV2RGB_UYVY)),
    "uyvy": _Layout(2, np.uint8, _cvt(cv2.COLOR_YUV2RGB_UYVY)),
    "yuyv": _Layout(2, np.uint8, _cvt(cv2.COLOR_YUV2RGB_YUYV)),
    "yuv422_yuy2": _Layout(2, np.uint8, _cvt(cv2.COLOR_YUV2RGB_YUYV)),
    "bayer_rggb8": _Layout(1, np.uint8, _cvt_plane(cv2.COLOR_BayerBG2RGB)),
    "bayer_bggr8": _Layout(1, np.uint8, _cvt_plane(cv2.COLOR_BayerRG2RGB)),
    "bayer_gbrg8": _Layout(1, np.uint8, _cvt_plane(cv2.COLOR_BayerGR2RGB)),
    "bayer_grbg8": _Layout(1, np.uint8, _cvt_plane(cv2.COLOR_BayerGB2RGB)),
}
_CHROMA_PAIRED = frozenset({"yuv422", "uyvy", "yuyv", "yuv422_yuy2"})
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

# encoding -> (channels, little-endian dtype, RGB -> channel order); all with is_bigendian = 0
_OUTPUT_LAYOUTS: dict[str, tuple[int, np.dtype, Callable[[np.ndarray], np.ndarray]]] = {
    "rgb8": (3, np.dtype(np.uint8), lambda image: image),
    "bgr8": (3, np.dtype(np.uint8), lambda image: image[..., ::-1]),
    "mono8": (1, np.dtype(np.uint8), lambda image: image),
    "mono16": (1, np.dtype("<u2"), lambda image: image),
}
_COMPRESSED_CODECS = frozenset({"jpeg", "jpg", "png"})

ByteBuffer = bytes | bytearray | memoryview | pyarray.array | np.ndarray   # anything with the buffer protocol


def _byte_buffer(data: ByteBuffer) -> np.ndarray:
    try:
        return np.frombuffer(data, np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(f"data is not a contiguous byte buffer ({type(data).__name__}): {exc}") from exc


def decode_image(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int,
                 data: ByteBuffer) -> np.ndarray:
    """sensor_msgs/Image fields -> (height, width, 3) C-contiguous uint8 RGB.

    `data` is anything with the buffer protocol (bytes, array.array, memoryview, uint8 ndarray);
    bytes beyond step x height are ignored. Where no conversion is needed (unpadded rgb8) the
    result is a view of `data`, read-only when `data` is.
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image size {height}x{width} (HxW) is empty")
    if encoding in _CHROMA_PAIRED and width % 2:
        raise ImageDecodeError(f"{encoding} needs an even width (two pixels share chroma), got {width}")
    itemsize = np.dtype(layout.dtype).itemsize
    row_bytes = width * layout.channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes} bytes)")
    buf = _byte_buffer(data)
    if buf.size < step * height:
        raise ImageDecodeError(f"data has {buf.size} bytes, fewer than step x height = "
                               f"{step} x {height} = {step * height}")
    dtype = np.dtype(layout.dtype).newbyteorder(">" if is_bigendian else "<")
    view = np.ndarray((height, width, layout.channels), dtype=dtype, buffer=buf,
                      strides=(step, layout.channels * itemsize, itemsize))
    return np.ascontiguousarray(layout.to_rgb(view))


def decode_compressed(format: str, data: ByteBuffer) -> np.ndarray:  # noqa: A002 - the CompressedImage field name
    """sensor_msgs/CompressedImage fields -> (H, W, 3) uint8 RGB for JPEG and PNG.

    `format` is either the codec ("jpeg", "png") or image_transport's "<encoding>; <codec> compressed
    <encoding>"; an empty format is decoded by content. compressedDepth payloads are rejected.
    """
    words = format.lower().split(";")[-1].split()
    if words and words[0] not in _COMPRESSED_CODECS:
        raise ImageDecodeError(f"unsupported compressed format {format!r}; supported: JPEG and PNG")
    buf = _byte_buffer(data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f"cannot decode {buf.size} bytes of {format or 'compressed'} data "
                               "(corrupt or not JPEG/PNG)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_image(image: np.ndarray, encoding: str) -> tuple[int, pyarray.array]:
    """(step, data) of a sensor_msgs/Image with is_bigendian = 0.

    rgb8 and bgr8 take an (H, W, 3) uint8 RGB array; mono8 an (H, W) uint8 one; mono16 an (H, W)
    uint8 or uint16 one, written little-endian. `data` is an array.array("B"), which rclpy stores
    without checking every byte and which also serves as a buffer for bag writers.
    """
    if encoding not in _OUTPUT_LAYOUTS:
        raise ValueError(f"cannot encode {encoding!r}; supported: {', '.join(_OUTPUT_LAYOUTS)}")
    channels, dtype, from_rgb = _OUTPUT_LAYOUTS[encoding]
    shape_ok = (image.ndim == 3 and image.shape[2] == 3) if channels == 3 else image.ndim == 2
    if not shape_ok or not np.can_cast(image.dtype, dtype):
        wanted = "(H, W, 3)" if channels == 3 else "(H, W)"
        raise ValueError(f"{encoding} needs a {wanted} array castable to {dtype.name}, "
                         f"got shape {image.shape} of {image.dtype}")
    payload = np.ascontiguousarray(from_rgb(image), dtype=dtype)
    data = pyarray.array("B")
    data.frombytes(payload.view(np.uint8).reshape(-1))   # one copy, straight from the array's buffer
    return image.shape[1] * channels * dtype.itemsize, data


def decode_message(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs/Image or CompressedImage (rclpy's or a rosbags type store's)."""
    if hasattr(msg, "format"):   # only CompressedImage has it
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)


_LABEL_DTYPES = {"mono8": np.dtype(np.uint8), "8UC1": np.dtype(np.uint8),
                 "mono16": np.dtype(np.uint16), "16UC1": np.dtype(np.uint16)}


def decode_labels(msg) -> np.ndarray:
    """(H, W) class ids of a mono8 / mono16 label Image (uint8 / uint16), honouring row padding and byte order."""
    dtype = _LABEL_DTYPES.get(msg.encoding)
    if dtype is None:
        raise ImageDecodeError(f"label images must be mono8 or mono16, got {msg.encoding!r}")
    if msg.width <= 0 or msg.height <= 0:
        raise ImageDecodeError(f"label image size {msg.height}x{msg.width} (HxW) is empty")
    if msg.step < msg.width * dtype.itemsize:
        raise ImageDecodeError(f"label image step {msg.step} is smaller than one row of {msg.width} "
                               f"{msg.encoding} pixels")
    buf = _byte_buffer(msg.data)
    if buf.size < msg.step * msg.height:
        raise ImageDecodeError(f"label image data has {buf.size} bytes, fewer than step x height = "
                               f"{msg.step * msg.height}")
    view = np.ndarray((msg.height, msg.width), dtype=dtype.newbyteorder(">" if msg.is_bigendian else "<"),
                      buffer=buf, strides=(msg.step, dtype.itemsize))
    return view.astype(dtype)


def image_message(message_type: type, header, image: np.ndarray, encoding: str):
    """A sensor_msgs/Image of `message_type` holding `image` (see encode_image for the encodings).

    `message_type` is rclpy's `sensor_msgs.msg.Image` (data stays an array.array, which rclpy
    takes without a per-byte check) or a rosbags type store's Image (which wants a uint8 ndarray).
    """
    step, data = encode_image(image, encoding)
    if hasattr(message_type, "__msgtype__"):   # rosbags' message dataclasses carry their type name
        data = np.frombuffer(data, np.uint8)
    return message_type(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                        is_bigendian=0, step=step, data=data)
