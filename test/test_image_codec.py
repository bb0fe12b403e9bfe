"""Image payloads built from a known RGB image decode back to it; bad payloads are rejected by name."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from bisegunet_ros.image_codec import (SUPPORTED_ENCODINGS, ImageDecodeError, decode_compressed, decode_image,
                                       decode_labels, decode_message, encode_image, image_message)

H, W, BLOCK = 32, 48, 8


def _known_rgb() -> np.ndarray:
    """Flat 8x8 colour blocks: chroma pairs share a colour (YUV 4:2:2 is lossless) and block interiors
    are flat (bilinear demosaicing is exact there). Values stay inside video range for YUV."""
    blocks = np.random.default_rng(7).integers(20, 236, (H // BLOCK, W // BLOCK, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, BLOCK, axis=0), BLOCK, axis=1)


RGB = _known_rgb()
GRAY = RGB[..., 1]
GRAY_RGB = np.repeat(GRAY[..., None], 3, axis=2)
# BT.601 video range, the inverse of what OpenCV's YUV 4:2:2 conversions apply
RGB_TO_YUV = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255


def _yuv422(chroma_first: bool) -> np.ndarray:
    yuv = np.round(RGB @ RGB_TO_YUV.T + [16, 128, 128]).astype(np.uint8)
    chroma = np.where(np.arange(W) % 2 == 0, yuv[:, 0::2, 1].repeat(2, axis=1), yuv[:, 0::2, 2].repeat(2, axis=1))
    pair = (chroma, yuv[..., 0]) if chroma_first else (yuv[..., 0], chroma)
    return np.stack(pair, axis=2)


def _bayer(pattern: str) -> np.ndarray:
    """Mosaic whose top-left 2x2 block is `pattern` read row by row (the ROS naming)."""
    mosaic = np.empty((H, W), np.uint8)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        mosaic[dy::2, dx::2] = RGB[dy::2, dx::2, "rgb".index(colour)]
    return mosaic


def _mono16(byteorder: str) -> np.ndarray:
    low = np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint16)
    return ((GRAY.astype(np.uint16) << 8) | low).astype(byteorder + "u2")


def _interior(image: np.ndarray) -> np.ndarray:
    """Pixels at least 2 away from every block edge, where demosaicing sees one flat colour."""
    inside = (np.arange(BLOCK) >= 2) & (np.arange(BLOCK) < BLOCK - 2)
    return image[np.tile(inside, H // BLOCK)][:, np.tile(inside, W // BLOCK)]


# encoding -> (H x W x channels payload, expected RGB, tolerance, region compared)
CASES = {
    "rgb8": (RGB, RGB, 0, None),
    "bgr8": (RGB[..., ::-1], RGB, 0, None),
    "rgba8": (np.dstack([RGB, np.full((H, W), 9, np.uint8)]), RGB, 0, None),
    "bgra8": (np.dstack([RGB[..., ::-1], np.full((H, W), 9, np.uint8)]), RGB, 0, None),
    "mono8": (GRAY, GRAY_RGB, 0, None),
    "mono16": (_mono16("<"), GRAY_RGB, 0, None),
    "yuv422": (_yuv422(chroma_first=True), RGB, 2, None),
    "uyvy": (_yuv422(chroma_first=True), RGB, 2, None),
    "yuyv": (_yuv422(chroma_first=False), RGB, 2, None),
    "yuv422_yuy2": (_yuv422(chroma_first=False), RGB, 2, None),
    "bayer_rggb8": (_bayer("rggb"), RGB, 1, _interior),
    "bayer_bggr8": (_bayer("bggr"), RGB, 1, _interior),
    "bayer_gbrg8": (_bayer("gbrg"), RGB, 1, _interior),
    "bayer_grbg8": (_bayer("grbg"), RGB, 1, _interior),
}


def _rows(payload: np.ndarray, pad: int = 0) -> tuple[int, bytes]:
    """(step, data) with `pad` junk bytes after every row."""
    rows = np.ascontiguousarray(payload).view(np.uint8).reshape(H, -1)
    junk = np.full((H, pad), 0xAB, np.uint8)
    return rows.shape[1] + pad, np.hstack([rows, junk]).tobytes()


def _decode(encoding: str, pad: int = 0, is_bigendian: int = 0) -> np.ndarray:
    step, data = _rows(CASES[encoding][0], pad)
    return decode_image(encoding, W, H, step, is_bigendian, data)


def test_cases_cover_every_supported_encoding():
    assert set(CASES) == set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_every_encoding_decodes_to_the_known_rgb(encoding):
    _, expected, tolerance, region = CASES[encoding]
    rgb = _decode(encoding)
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3) and rgb.flags.c_contiguous
    region = region or (lambda image: image)
    error = np.abs(region(rgb).astype(int) - region(expected).astype(int)).max()
    assert error <= tolerance, f"{encoding}: max error {error}"


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_padded_rows_decode_like_unpadded(encoding):
    # 5 junk bytes: odd, so mono16 rows start unaligned
    padded = _decode(encoding, pad=5)
    assert padded.flags.c_contiguous
    np.testing.assert_array_equal(padded, _decode(encoding))


def test_mono16_big_and_little_endian_give_the_same_image():
    step, big = _rows(_mono16(">"))
    np.testing.assert_array_equal(decode_image("mono16", W, H, step, True, big), _decode("mono16"))


def test_unpadded_rgb8_is_a_view_of_the_message_data():
    step, data = _rows(RGB)
    for buffer in (data, array.array("B", data), np.frombuffer(data, np.uint8)):
        rgb = decode_image("rgb8", W, H, step, 0, buffer)
        assert np.shares_memory(rgb, np.frombuffer(buffer, np.uint8))
        np.testing.assert_array_equal(rgb, RGB)
    step, data = _rows(RGB, pad=3)
    assert not np.shares_memory(decode_image("rgb8", W, H, step, 0, data), np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: array.array("B", b),
                                  lambda b: np.frombuffer(b, np.uint8)])
def test_any_byte_buffer_is_accepted_and_extra_bytes_ignored(wrap):
    step, data = _rows(CASES["bgr8"][0])
    np.testing.assert_array_equal(decode_image("bgr8", W, H, step, 0, wrap(data + b"tail")), RGB)


@pytest.mark.parametrize("encoding, width, height, step, data, message", [
    ("32FC1", W, H, W * 4, bytes(W * 4 * H), r"unsupported encoding '32FC1'; supported: rgb8, bgr8.*bayer_grbg8"),
    ("rgb8", 0, H, 0, b"", r"image size 32x0 \(HxW\) is empty"),
    ("rgb8", W, 0, W * 3, b"", r"image size 0x48 \(HxW\) is empty"),
    ("rgb8", W, H, W * 3 - 1, bytes(W * 3 * H), r"step 143 is smaller than one row of 48 rgb8 pixels \(144 bytes\)"),
    ("mono16", W, H, W, bytes(W * 2 * H), r"step 48 is smaller than one row of 48 mono16 pixels \(96 bytes\)"),
    ("rgb8", W, H, W * 3, bytes(W * 3 * H - 1), r"data has 4607 bytes, fewer than step x height = 144 x 32 = 4608"),
    ("yuv422", W - 1, H, W * 2, bytes(W * 2 * H), r"yuv422 needs an even width .* got 47"),
    ("rgb8", W, H, W * 3, [0] * (W * 3 * H), r"data is not a contiguous byte buffer \(list\)"),
])
def test_bad_frames_raise_a_named_decode_error(encoding, width, height, step, data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(encoding, width, height, step, 0, data)


def _encoded(extension: str, image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", ""])
def test_png_round_trip_is_exact(fmt):
    np.testing.assert_array_equal(decode_compressed(fmt, _encoded(".png", RGB[..., ::-1])), RGB)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "JPG"])
def test_jpeg_round_trip_is_close(fmt):
    rgb = decode_compressed(fmt, array.array("B", _encoded(".jpg", RGB[..., ::-1])))
    # chroma subsampling blurs the block edges; the interiors (and the channel order) survive
    assert rgb.shape == (H, W, 3) and np.median(np.abs(rgb.astype(int) - RGB)) <= 2


def test_grey_png_decodes_to_three_equal_channels():
    np.testing.assert_array_equal(decode_compressed("mono8; png compressed mono8", _encoded(".png", GRAY)), GRAY_RGB)


@pytest.mark.parametrize("fmt, data, message", [
    ("jpeg", b"\xff\xd8 not really a jpeg", r"cannot decode 20 bytes of jpeg data"),
    ("png", b"", r"compressed image has no data"),
    ("16UC1; compressedDepth png", b"\x00" * 16, r"unsupported compressed format '16UC1; compressedDepth png'"),
    ("h264", b"\x00" * 16, r"unsupported compressed format 'h264'; supported: JPEG and PNG"),
])
def test_bad_compressed_frames_raise_a_named_decode_error(fmt, data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_compressed(fmt, data)


@pytest.mark.parametrize("encoding, image, expected", [
    ("rgb8", RGB, RGB), ("bgr8", RGB, RGB), ("mono8", GRAY, GRAY_RGB)])
def test_encoded_images_decode_back(encoding, image, expected):
    step, data = encode_image(image, encoding)
    assert isinstance(data, array.array) and data.typecode == "B" and len(data) == step * H
    np.testing.assert_array_equal(decode_image(encoding, W, H, step, 0, data), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mono16_labels_are_written_little_endian(dtype):
    labels = (np.arange(H * W).reshape(H, W) % (200 if dtype == np.uint8 else 4000)).astype(dtype)
    step, data = encode_image(labels, "mono16")
    assert step == W * 2
    np.testing.assert_array_equal(np.frombuffer(data, "<u2").reshape(H, W), labels)


@pytest.mark.parametrize("image, encoding, message", [
    (RGB, "yuv422", r"cannot encode 'yuv422'; supported: rgb8, bgr8, mono8, mono16"),
    (GRAY, "rgb8", r"rgb8 needs a \(H, W, 3\) array castable to uint8, got shape \(32, 48\) of uint8"),
    (RGB, "mono8", r"mono8 needs a \(H, W\) array"),
    (GRAY.astype(np.uint16), "mono8", r"castable to uint8, got shape \(32, 48\) of uint16"),
    (GRAY.astype(np.int64), "mono16", r"castable to uint16"),
])
def test_encode_rejects_what_the_encoding_cannot_hold(image, encoding, message):
    with pytest.raises(ValueError, match=message):
        encode_image(image, encoding)


def _message_types():
    """sensor_msgs Image and CompressedImage as rclpy builds them and as a rosbags type store does."""
    from rosbags.typesys import Stores, get_typestore
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    types = get_typestore(Stores.ROS2_HUMBLE).types
    return {"rclpy": (Image, CompressedImage, Header()),
            "rosbags": (types["sensor_msgs/msg/Image"], types["sensor_msgs/msg/CompressedImage"],
                        types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=3, nanosec=4),
                                                     frame_id="cam"))}


@pytest.mark.parametrize("kind", ["rclpy", "rosbags"])
def test_messages_built_here_decode_back_for_both_message_kinds(kind):
    image_type, compressed_type, header = _message_types()[kind]
    msg = image_message(image_type, header, RGB, "bgr8")
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.header) == (H, W, "bgr8", W * 3, header)
    np.testing.assert_array_equal(decode_message(msg), RGB)
    labels = (np.arange(H * W).reshape(H, W) % 19).astype(np.uint8)
    np.testing.assert_array_equal(decode_labels(image_message(image_type, header, labels, "mono8")), labels)
    png = compressed_type(header=header, format="png", data=np.frombuffer(_encoded(".png", RGB[..., ::-1]), np.uint8))
    np.testing.assert_array_equal(decode_message(png), RGB)


class _Fields:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_label_images_honour_padding_and_byte_order():
    labels = (np.arange(H * W).reshape(H, W) % 3000).astype(np.uint16)
    rows = np.zeros((H, W * 2 + 6), np.uint8)
    rows[:, : W * 2] = labels.astype(">u2").view(np.uint8).reshape(H, W * 2)
    decoded = decode_labels(_Fields(encoding="mono16", width=W, height=H, step=W * 2 + 6, is_bigendian=1,
                                    data=rows.tobytes()))
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, labels)


@pytest.mark.parametrize("fields, message", [
    (dict(encoding="rgb8"), "label images must be mono8 or mono16, got 'rgb8'"),
    (dict(step=W - 1), f"step {W - 1} is smaller than one row"),
    (dict(data=bytes(W * H - 1)), f"has {W * H - 1} bytes, fewer than step x height = {W * H}"),
    (dict(width=0), r"size 32x0 \(HxW\) is empty"),
])
def test_bad_label_images_are_rejected_by_name(fields, message):
    msg = _Fields(**{**dict(encoding="mono8", width=W, height=H, step=W, is_bigendian=0, data=bytes(W * H)),
                     **fields})
    with pytest.raises(ImageDecodeError, match=message):
        decode_labels(msg)
