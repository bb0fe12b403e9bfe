"""Reading and writing ROS 2 bags (mcap and sqlite3) with rosbags: no ROS install needed.

A bag that is still being recorded, or was cut off, is read as far as it is valid, with a
warning: `ros2 bag record` writes metadata.yaml only when it closes, and a crash leaves an MCAP
file without its footer. Both cases fall back to reading the storage file record by record.
Zstd-compressed bags need `compression.zstd` (Python 3.14) or, before 3.14 (Humble's Python
3.10), the package `backports.zstd`; without it the failure says which package to install.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import struct
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Iterator

ZSTD_MISSING = ("the Python package 'backports.zstd' is not installed: before Python 3.14 it is what reads "
                "zstd-compressed bags (pip install backports.zstd)")
try:
    from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
except ModuleNotFoundError as exc:  # rosbags imports backports.zstd at import time
    if (exc.name or "").startswith("backports"):
        raise ImportError(f"rosbags cannot be imported: {ZSTD_MISSING}") from exc
    raise
from rosbags.typesys import Stores, get_typestore

log = logging.getLogger(__name__)
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)  # sensor_msgs/Image and CompressedImage are the same since Humble
MCAP_MAGIC = b"\x89MCAP0\r\n"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CLASS_NAMES_KEY = "bisegunet.class_names"   # custom_data of bisegunet-make-bag's bags: the labels' classes (JSON)


class BagError(RuntimeError):
    """A bag that cannot be used as asked; the message says why and what the bag holds."""


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int        # receive time, ns
    raw: bytes            # CDR, exactly as recorded

    def decode(self):
        return TYPESTORE.deserialize_cdr(self.raw, self.msgtype)


def topics_of(path: Path) -> dict[str, str]:
    """topic -> message type of every connection in the bag."""
    return {topic: msgtype for topic, msgtype, *_ in _read(Path(path), None, topics_only=True)}


def _listing(available: dict[str, str]) -> str:
    return "; ".join(f"{t} [{m}]" for t, m in sorted(available.items())) or "no topic"


def check_topics(path: str | Path, topics: list[str]) -> None:
    """BagError naming the absent ones and listing the bag's topics, unless the bag holds every one of `topics`."""
    available = topics_of(Path(path))
    missing = [t for t in topics if t not in available]
    if missing:
        raise BagError(f"{path}: no topic {', '.join(missing)} in this bag; it holds: {_listing(available)}")


def find_image_topic(path: str | Path, preferred: str, exclude: tuple[str, ...] = ()) -> str:
    """`preferred` when the bag has it, else the bag's one Image or CompressedImage topic outside `exclude`
    (labels, predictions); BagError listing the candidates when there are none or several."""
    available = topics_of(Path(path))
    if preferred in available:
        return preferred
    candidates = sorted(t for t, m in available.items() if m in IMAGE_TYPES and t not in exclude)
    if len(candidates) == 1:
        log.info("%s: reading images from %s (its only image topic)", path, candidates[0])
        return candidates[0]
    if not candidates:
        raise BagError(f"{path}: no Image or CompressedImage topic besides {', '.join(exclude)}; it holds: "
                       f"{_listing(available)}")
    raise BagError(f"{path}: several image topics, give one with --image-topic: {', '.join(candidates)}")


def class_names_of(path: str | Path) -> list[str] | None:
    """The class names bisegunet-make-bag recorded for the bag's labels (metadata.yaml custom_data); None for
    other bags and for bags without metadata (still being recorded, or cut off)."""
    import yaml

    metadata = Path(path) / "metadata.yaml"
    try:
        info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    text = (info.get("custom_data") or {}).get(CLASS_NAMES_KEY)
    return json.loads(text) if text else None


def read_messages(path: str | Path, topics: list[str]) -> Iterator[BagMessage]:
    """Messages of `topics` in storage order; BagError listing the bag's topics if one is absent."""
    path = Path(path)
    check_topics(path, topics)
    for topic, msgtype, timestamp, raw in _read(path, set(topics)):
        yield BagMessage(topic, msgtype, timestamp, raw)


def _read(path: Path, topics: set[str] | None, topics_only: bool = False):
    if not path.exists():
        raise BagError(f"{path}: no such bag (give the bag's directory, as written by ros2 bag record)")
    try:
        with Reader(path) as reader:
            connections = [c for c in reader.connections if topics is None or c.topic in topics]
            if topics_only:
                yield from ((c.topic, c.msgtype) for c in connections)
                return
            try:
                for connection, timestamp, raw in reader.messages(connections=connections):
                    yield connection.topic, connection.msgtype, timestamp, bytes(raw)
            except Exception as exc:  # storage corruption surfaces as several exception types
                log.warning("%s: stopped reading at a corrupt record (%s); results cover the messages before it",
                            path, exc)
            return
    except (ReaderError, FileNotFoundError) as exc:
        storage = _storage_file(path)
        if storage is None:
            raise BagError(f"{path}: not a readable ROS 2 bag ({exc})") from exc
        log.warning("%s: %s; reading %s record by record as far as it is valid", path, exc, storage.name)
    fallback = _read_mcap_partial if storage.suffix == ".mcap" else _read_sqlite_partial
    yield from fallback(storage, topics, topics_only)


def _storage_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix in (".mcap", ".db3") else None
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    return files[0] if files else None


def _read_sqlite_partial(db: Path, topics, topics_only: bool):
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        types = {row[0]: (row[1], row[2]) for row in connection.execute("SELECT id, name, type FROM topics")}
    except sqlite3.DatabaseError as exc:
        raise BagError(f"{db}: not a readable rosbag2 sqlite3 file ({exc})") from exc
    wanted = {i: t for i, t in types.items() if topics is None or t[0] in topics}
    if topics_only:
        yield from wanted.values()
        return
    try:
        for topic_id, timestamp, data in connection.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"):
            if topic_id in wanted:
                yield (*wanted[topic_id], timestamp, bytes(data))
    except sqlite3.DatabaseError as exc:
        log.warning("%s: stopped at a corrupt page (%s)", db, exc)


def zstd_module() -> ModuleType:
    """The zstd module: the standard library's from Python 3.14, `backports.zstd` before; BagError naming the
    package when neither is importable."""
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        try:
            from backports import zstd
        except ImportError as exc:
            raise BagError(ZSTD_MISSING) from exc
    return zstd


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        return zstd_module().decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    raise BagError(f"unsupported MCAP chunk compression {compression!r}")


def _read_mcap_partial(file: Path, topics, topics_only: bool):
    """Records of an MCAP file up to the first incomplete one (https://mcap.dev/spec)."""
    data = file.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        raise BagError(f"{file}: not an MCAP file (bad magic)")
    schemas, channels, seen = {}, {}, set()

    def records(buffer: bytes, offset: int):
        while offset + 9 <= len(buffer):
            opcode, length = struct.unpack_from("<BQ", buffer, offset)
            if offset + 9 + length > len(buffer):
                log.warning("%s: ends inside a record at byte %d (truncated); read up to there", file, offset)
                if opcode == 0x06:  # an uncompressed chunk's complete messages are still usable
                    yield opcode, buffer[offset + 9:]
                return
            yield opcode, buffer[offset + 9: offset + 9 + length]
            offset += 9 + length

    def string(b: BytesIO) -> str:
        (n,) = struct.unpack("<I", b.read(4))
        return b.read(n).decode()

    def handle(opcode: int, body: bytes):
        b = BytesIO(body)
        if opcode == 0x03:                                   # Schema
            (schema_id,) = struct.unpack("<H", b.read(2))
            schemas[schema_id] = string(b)
        elif opcode == 0x04:                                 # Channel
            channel_id, schema_id = struct.unpack("<HH", b.read(4))
            channels[channel_id] = (string(b), schemas.get(schema_id, ""))
        elif opcode == 0x05:                                 # Message
            channel_id, _, log_time, _ = struct.unpack_from("<HIQQ", body)
            yield channel_id, log_time, body[22:]
        elif opcode == 0x06:                                 # Chunk
            _, _, size, _ = struct.unpack("<QQQI", b.read(28))
            compression = string(b)
            (n,) = struct.unpack("<Q", b.read(8))
            payload = b.read(n)
            if len(payload) < n and compression:
                return  # a cut compressed chunk cannot be decoded
            inner = _decompress(payload, compression)
            for inner_opcode, inner_body in records(inner, 0):
                yield from handle(inner_opcode, inner_body)

    for opcode, body in records(data, len(MCAP_MAGIC)):
        for channel_id, log_time, raw in handle(opcode, body):
            topic, msgtype = channels[channel_id]
            if topics is not None and topic not in topics:
                continue
            if topics_only:
                if topic not in seen:
                    seen.add(topic)
                    yield topic, msgtype
                continue
            yield topic, msgtype, log_time, bytes(raw)
    if topics_only:  # channels announced but without messages yet
        yield from ((t, m) for t, m in channels.values() if t not in seen and (topics is None or t in topics))


class BagWriter:
    """A rosbags Writer with one connection per topic, created on first use."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ValueError(f"storage must be mcap or sqlite3, got {storage!r}")
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or choose another output path")
        self.writer = Writer(path, version=9, storage_plugin=plugins[storage])
        self.connections = {}

    def __enter__(self) -> "BagWriter":
        self.writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def record(self, key: str, value) -> None:
        """Store `value` (as JSON) in the bag's metadata custom_data under `key`."""
        self.writer.set_custom_data(key, json.dumps(value))

    def write(self, topic: str, msgtype: str, timestamp: int, msg) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self.writer.write(self.connections[topic], timestamp, TYPESTORE.serialize_cdr(msg, msgtype))


def write_labelled_frames(path: str | Path, frames, fps: float = 10.0, frame_id: str = "camera",
                          image_topic: str = "/camera/image_raw", label_topic: str = "/camera/labels",
                          image_format: str = "rgb8", storage: str = "mcap", start_ns: int = 1_700_000_000 * 10**9,
                          class_names: list[str] | None = None) -> int:
    """Write (rgb, labels) pairs as an image and a mono8 label message with the same header stamp.

    `image_format` is rgb8 or bgr8 (sensor_msgs/Image on `image_topic`) or jpeg (CompressedImage
    on `image_topic`/compressed). `class_names`, the classes of the label ids, go into the bag's
    metadata (CLASS_NAMES_KEY), where bisegunet-eval-bag compares them with the model's. Returns
    the number of frames written.
    """
    import cv2

    from ..image_codec import image_message

    if image_format not in ("rgb8", "bgr8", "jpeg"):
        raise ValueError(f"image_format must be rgb8, bgr8 or jpeg, got {image_format!r}")
    types = TYPESTORE.types
    header_type, time_type = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]
    image_type, compressed_type = types["sensor_msgs/msg/Image"], types["sensor_msgs/msg/CompressedImage"]
    count = 0
    with BagWriter(path, storage) as writer:
        if class_names is not None:
            writer.record(CLASS_NAMES_KEY, list(class_names))
        for i, (rgb, labels) in enumerate(frames):
            t = start_ns + int(round(i * 1e9 / fps))
            header = header_type(stamp=time_type(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame_id)
            if image_format == "jpeg":
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                writer.write(f"{image_topic}/compressed", "sensor_msgs/msg/CompressedImage", t,
                             compressed_type(header=header, format="rgb8; jpeg compressed bgr8", data=jpeg.ravel()))
            else:
                writer.write(image_topic, "sensor_msgs/msg/Image", t, image_message(image_type, header, rgb,
                                                                                    image_format))
            writer.write(label_topic, "sensor_msgs/msg/Image", t, image_message(image_type, header, labels, "mono8"))
            count += 1
    return count
