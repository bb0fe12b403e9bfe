"""Training on your own data (docs/training.md): a class file, colour or id masks, fine-tuning, and
the path from images/ + masks/ + classes.yaml through training, export and the real node to an evaluation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image

from bisegunet_ros.classes import IGNORE_INDEX, ClassFileError, load_class_definition
from bisegunet_ros.evaluation.bag_io import TYPESTORE, BagWriter, read_messages
from bisegunet_ros.image_codec import decode_labels
from bisegunet_ros.evaluation.evaluate_bag import main as eval_bag
from bisegunet_ros.image_codec import encode_image
from bisegunet_ros.msg import ClassMasks, SegmentationInfo
from bisegunet_training.checkpoint import load_checkpoint
from bisegunet_training.class_weights import class_weights, median_frequency_weights
from bisegunet_training.data import MaskScan, build_dataset, check_masks, class_definition
from bisegunet_training.export import main as export_main
from bisegunet_training.finetune import load_matching_weights
from bisegunet_training.make_bag import main as make_bag
from bisegunet_training.model import build_model, load_model_config
from bisegunet_training.train import main as train_main
from ros_client import RosClient

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "config/train/ci.yaml")
NAMES = ["drivable", "lane_marking", "vehicle", "background"]
COLORS = [(128, 64, 128), (255, 255, 255), (0, 0, 142), (0, 0, 0)]
H, W = 64, 128
MEAN, STD = [0.5] * 3, [0.25] * 3


def write_classes(path: Path, names=NAMES, colors=COLORS, ignore: int = 255) -> Path:
    path.write_text(f"ignore_index: {ignore}\nclasses:\n" +
                    "".join(f"  - {{name: {n}, color: {list(c)}}}\n" for n, c in zip(names, colors)))
    return path


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A road scene of the 4 classes: background above, drivable below, a lane marking, a vehicle."""
    label = np.full((H, W), 3, np.uint8)
    label[H // 2:] = 0
    label[H // 2 + 8:, W // 2 - 2: W // 2 + 2] = 1
    x = int(rng.integers(0, W - 30))
    label[H // 2 - 12: H // 2 + 12, x: x + 30] = 2
    rgb = np.asarray(COLORS, np.uint8)[label].astype(np.int16) // 2 + 60
    return np.clip(rgb + rng.integers(-10, 10, rgb.shape), 0, 255).astype(np.uint8), label


def write_pair(root: Path, name: str, rgb: np.ndarray, mask: np.ndarray) -> None:
    for sub, array in (("images", rgb), ("masks", mask)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / sub / f"{name}.png"), array[..., ::-1] if array.ndim == 3 else array)


def write_dataset(root: Path, count: int = 6, mask_format: str = "colors") -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        rgb, label = scene(rng)
        write_pair(root, f"frame{i}", rgb, np.asarray(COLORS, np.uint8)[label] if mask_format == "colors" else label)
    return write_classes(root / "classes.yaml")


def dataset(root: Path, mask_format: str = "colors", classes: Path | None = None):
    definition = load_class_definition(classes or root / "classes.yaml")
    return build_dataset("folders", "train", H, W, MEAN, STD, root=str(root), classes=definition,
                         mask_format=mask_format)


# The class file


def test_class_file_gives_names_palette_and_ignore_index(tmp_path):
    definition = load_class_definition(write_classes(tmp_path / "c.yaml", ignore=4))
    assert definition.table.names == tuple(NAMES) and definition.table.palette == tuple(COLORS)
    assert definition.ignore_index == 4
    assert class_definition("", "synthetic").table.names[0] == "road"      # default: Cityscapes' 19


@pytest.mark.parametrize("text, message", [
    ("classes: []", "non-empty list under 'classes'"),
    ("classes: [{name: a, color: [1, 2]}]", "classes[0] (a): color must be [r, g, b]"),
    ("classes: [{name: a, color: [1, 2, 3]}, {name: a, color: [3, 2, 1]}]", "class name 'a' appears twice"),
    ("classes: [{name: a, color: [1, 2, 3]}, {name: b, color: [1, 2, 3]}]", "color [1, 2, 3] is already 'a'"),
    ("ignore_index: 0\nclasses: [{name: a, color: [1, 2, 3]}]", "ignore_index must be an integer from 1"),
    ("classes: [{name: a, colour: [1, 2, 3]}]", "expected {name: ..., color: [r, g, b]}"),
    ("clases: [{name: a, color: [1, 2, 3]}]", "unknown key clases"),
])
def test_bad_class_file_is_refused_naming_file_and_entry(tmp_path, text, message):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(ClassFileError, match="classes.yaml") as err:
        load_class_definition(path)
    assert message in str(err.value)


def test_class_file_is_only_for_folder_datasets(tmp_path):
    with pytest.raises(ValueError, match="data.classes is for folder datasets"):
        class_definition(str(write_classes(tmp_path / "c.yaml")), "synthetic")


# Masks


def test_colour_masks_become_class_ids_and_unknown_colours_are_ignored_and_counted(tmp_path):
    write_dataset(tmp_path, count=2)
    rgb, label = scene(np.random.default_rng(1))
    mask = np.asarray(COLORS, np.uint8)[label]
    mask[0, :10] = (1, 2, 3)                         # 10 pixels in a colour of no class
    write_pair(tmp_path, "frame9", rgb, mask)
    data = dataset(tmp_path)
    raw, decoded = data.load(2)
    np.testing.assert_array_equal(decoded[1:], label[1:])
    assert (decoded[0, :10] == IGNORE_INDEX).all() and (decoded[0, 10:] == label[0, 10:]).all()
    scan = check_masks(data, 0.01, "classes.yaml")
    assert scan.unknown == {tmp_path / "masks" / "frame9.png": {(1, 2, 3): 10}}
    assert scan.class_pixels.sum() + 10 == scan.pixels == 3 * H * W


def test_ids_masks_map_the_files_ignore_index_to_255(tmp_path):
    write_classes(tmp_path / "classes.yaml", ignore=9)
    label = scene(np.random.default_rng(0))[1]
    label[0, 0] = 9
    write_pair(tmp_path, "a", np.zeros((H, W, 3), np.uint8), label)
    decoded = dataset(tmp_path, "ids").load(0)[1]
    assert decoded[0, 0] == IGNORE_INDEX and (decoded[1:] == label[1:]).all()


def test_median_frequency_weights_favour_rare_classes():
    scan = MaskScan(class_pixels=np.array([800, 10, 90, 0]), present_pixels=np.array([1000, 1000, 1000, 0]))
    weights = median_frequency_weights(scan, tuple(NAMES))
    # frequencies 0.8, 0.01, 0.09: median 0.09; the absent class gets 1
    assert weights == pytest.approx([0.09 / 0.8, 9.0, 1.0, 1.0])


def test_class_weights_list_must_have_one_positive_number_per_class(tmp_path):
    write_dataset(tmp_path, count=1)
    data = dataset(tmp_path)
    assert class_weights([1, 2, 3, 4], data) == [1.0, 2.0, 3.0, 4.0]
    assert class_weights(None, data) is None
    with pytest.raises(ValueError, match="loss.class_weights must be auto or a list of 4 positive numbers"):
        class_weights([1, 2], data)


def bad_mask(problem: str, root: Path) -> tuple[str, str]:
    """A dataset with one bad mask; returns (mask_format, the message expected)."""
    write_dataset(root, count=2, mask_format="ids" if problem == "id outside" else "colors")
    rgb, label = scene(np.random.default_rng(5))
    if problem == "size":
        write_pair(root, "bad", rgb, np.asarray(COLORS, np.uint8)[label][:, :-1])
        return "colors", f"{root / 'masks' / 'bad.png'}: size (64, 127) differs from its image"
    if problem == "id outside":
        label[3, 3] = 7
        write_pair(root, "bad", rgb, label)
        return "ids", f"{root / 'masks' / 'bad.png'}: ids [7] are outside the class table (0-3 and 255 = ignore)"
    mask = np.asarray(COLORS, np.uint8)[label]
    mask[: H // 2] = (10, 200, 10)                   # half of one mask of three: 1/6 of the pixels
    write_pair(root, "bad", rgb, mask)
    return "colors", f"have a colour of no class in {root / 'classes.yaml'}; most in {root / 'masks' / 'bad.png'}: " \
                     f"[10, 200, 10] ({H // 2 * W} px)"


@pytest.mark.parametrize("problem", ["size", "id outside", "unknown colours"])
def test_bad_mask_stops_training_with_one_clear_error(tmp_path, caplog, capsys, problem):
    mask_format, expected = bad_mask(problem, tmp_path / "data")
    args = ["--config", CI, f"out_dir={tmp_path}", "data.kind=folders", f"data.root={tmp_path / 'data'}",
            f"data.classes={tmp_path / 'data' / 'classes.yaml'}", f"data.mask_format={mask_format}"]
    assert train_main(args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and expected in errors[0], errors
    assert "Traceback" not in caplog.text + "".join(capsys.readouterr())
    assert not (tmp_path / "ci").exists()                                 # refused before the first step


# From images/ + masks/ + classes.yaml to a running node


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The documented path: train on a colour-mask folder dataset, export; returns (dataset root, run dir, model)."""
    tmp = tmp_path_factory.mktemp("own")
    classes = write_dataset(tmp / "data")
    assert train_main(["--config", CI, f"out_dir={tmp}", "name=own", "iters_per_epoch=1", "data.kind=folders",
                       f"data.root={tmp / 'data'}", f"data.classes={classes}", "data.mask_format=colors",
                       "loss.class_weights=auto"]) == 0
    model = tmp / "own.onnx"
    assert export_main(["--checkpoint", str(tmp / "own" / "best.pt"), "--out", str(model), "--dynamic-batch"]) == 0
    return tmp / "data", tmp / "own", model


def test_checkpoint_carries_the_class_files_names_and_palette(trained):
    _, run, _ = trained
    state = load_checkpoint(run / "best.pt")
    assert state["data"]["class_names"] == NAMES and state["data"]["palette"] == [list(c) for c in COLORS]
    assert state["model"]["head.weight"].shape[0] == 4
    assert state["train_config"]["loss"]["class_weights"] == "auto"


@pytest.mark.ros
def test_exported_model_runs_in_the_node_with_its_own_classes(trained, ros_process):
    data, _, model = trained
    proc = ros_process([sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", "-p",
                        f"model_path:={model}", "-p", f"mask_classes:=[{', '.join(NAMES)}]"],
                       wait_topics=["/camera/segmentation/label"])
    client = RosClient("own_data_client")
    try:
        got = {"class_masks": client.subscribe("/camera/segmentation/class_masks", ClassMasks),
               "info": client.subscribe("/camera/segmentation/info", SegmentationInfo),
               "color": client.subscribe("/camera/segmentation/color", Image)}
        rgb = cv2.cvtColor(cv2.imread(str(data / "images" / "frame0.png")), cv2.COLOR_BGR2RGB)
        msg = Image(height=H, width=W, encoding="rgb8", step=W * 3, data=rgb.tobytes())
        info = client.request("/camera/image", msg, got["info"])
        assert info is not None, proc.stop()
        assert client.spin_until(lambda: got["class_masks"] and got["color"], 10), proc.stop()
    finally:
        client.close()
    assert list(info.class_names) == NAMES
    masks = got["class_masks"][-1]
    assert list(masks.class_names) == NAMES and list(masks.class_ids) == [0, 1, 2, 3]
    colour = np.frombuffer(bytes(got["color"][-1].data), np.uint8).reshape(-1, 3)
    assert {tuple(c) for c in np.unique(colour, axis=0)} <= set(COLORS)     # the class file's palette


def test_bag_of_the_folders_evaluates_under_the_models_class_names(trained, tmp_path):
    data, _, model = trained
    bag = tmp_path / "bag"
    assert make_bag([str(bag), "--source", "folders", "--root", str(data), "--classes", str(data / "classes.yaml"),
                     "--mask-format", "colors"]) == 0
    assert eval_bag([str(bag), "--model", str(model), "--out", str(tmp_path / "report")]) == 0
    result = json.loads((tmp_path / "report" / "report.json").read_text())
    assert result["frames"]["evaluated"] == 6 and list(result["metrics"]["iou"]) == NAMES
    # the bag's labels are the dataset's own ids (255 = ignore), frame for frame
    written = [decode_labels(m.decode()) for m in read_messages(bag, ["/camera/labels"])]
    expected = [dataset(data).load(i)[1] for i in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(written, expected)) and len(written) == 6


def test_recorded_predictions_evaluate_under_the_class_files_names(tmp_path):
    """Without a model (--pred-topic), --classes names the classes of the bag's labels."""
    classes = write_classes(tmp_path / "classes.yaml")
    bag, image_type = tmp_path / "bag", TYPESTORE.types["sensor_msgs/msg/Image"]
    label = scene(np.random.default_rng(0))[1]
    with BagWriter(bag) as writer:
        for topic in ("/camera/labels", "/camera/segmentation/label"):
            step, data = encode_image(label, "mono8")
            header = TYPESTORE.types["std_msgs/msg/Header"](stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](
                sec=1, nanosec=0), frame_id="camera")
            writer.write(topic, "sensor_msgs/msg/Image", 10**9, image_type(
                header=header, height=H, width=W, encoding="mono8", is_bigendian=0, step=step,
                data=np.frombuffer(data, np.uint8)))
    assert eval_bag([str(bag), "--pred-topic", "/camera/segmentation/label", "--image-topic", "", "--classes",
                     str(classes), "--out", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]
    assert metrics["miou"] == 1.0 and list(metrics["iou"]) == NAMES


# Fine-tuning


def test_init_from_loads_matching_weights_and_reinitialises_the_head(trained, caplog):
    _, run, _ = trained
    source = load_checkpoint(run / "best.pt")["model"]
    model = build_model(load_model_config(str(ROOT / "config/model/tiny.yaml"), ["num_classes=3"]))
    fresh_head = model.state_dict()["head.weight"].clone()
    with caplog.at_level("INFO"):
        loaded, kept = load_matching_weights(model, run / "best.pt")
    assert kept == ["head.weight", "head.bias"] and len(loaded) == len(source) - 2
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in loaded)
    assert torch.equal(state["head.weight"], fresh_head)
    assert "re-initialised (no match in the checkpoint): head.weight (3, 16, 1, 1) (checkpoint (4, 16, 1, 1))" \
        in caplog.text


def test_fine_tuning_a_binarized_model_on_other_classes(trained, tmp_path):
    data, run, _ = trained
    three = write_classes(tmp_path / "three.yaml", NAMES[:2] + ["other"], COLORS[:2] + [COLORS[3]])
    (tmp_path / "data").mkdir()
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).symlink_to(data / sub)
    args = ["--config", CI, f"out_dir={tmp_path}", "name=tuned", "epochs=1", "iters_per_epoch=1", "phases=binary_only",
            f"init_from={run / 'best.pt'}", "data.kind=folders", f"data.root={tmp_path / 'data'}",
            f"data.classes={three}", "data.mask_format=colors", "data.max_unknown_color_fraction=0.5"]
    assert train_main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["binarized_fraction"]) for r in rows] == [(3, 1.0)]
    state = load_checkpoint(tmp_path / "tuned" / "best.pt")
    assert state["data"]["class_names"] == ["drivable", "lane_marking", "other"] and all(state["binarized"].values())
