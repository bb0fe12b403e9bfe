"""Training data: synthetic scenes, Cityscapes and folder layouts, augmentation, loaders."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bisegunet_training.data import DatasetError, build_dataset, build_loader, render_scene
from bisegunet_training.data.transforms import Augment

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_scenes_are_deterministic_by_seed_and_index():
    a, b = render_scene(3, 7, 64, 128), render_scene(3, 7, 64, 128)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(render_scene(3, 8, 64, 128)[0], a[0])
    assert not np.array_equal(render_scene(4, 7, 64, 128)[0], a[0])


def test_labels_are_train_ids_and_classes_appear():
    seen = set()
    for i in range(20):
        rgb, label = render_scene(0, i, 128, 256)
        assert rgb.shape == (128, 256, 3) and label.shape == (128, 256)
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(19)) | {255}
    assert len(seen - {255}) >= 17          # rare ones (train, wall) may be missing in 20 scenes


@pytest.mark.parametrize("size", [(97, 203), (512, 1024)])
def test_any_resolution(size):
    rgb, label = render_scene(1, 0, *size)
    assert rgb.shape[:2] == label.shape == size


def test_difficulty_changes_image_statistics():
    def roughness(difficulty):
        rgb = render_scene(5, 0, 128, 256, difficulty)[0].astype(np.float32)
        return np.abs(np.diff(rgb, axis=1)).mean()

    assert roughness(1.0) > 1.5 * roughness(0.0)
    with pytest.raises(ValueError, match="difficulty"):
        render_scene(0, 0, 8, 8, 1.5)


def test_train_and_val_splits_never_share_a_scene():
    train = build_dataset("synthetic", "train", 32, 64, MEAN, STD, length=4)
    val = build_dataset("synthetic", "val", 32, 64, MEAN, STD, length=4)
    assert not any(torch.equal(train[i][0], val[j][0]) for i in range(4) for j in range(4))


def test_augmentation_crops_flips_and_never_interpolates_labels():
    rgb, label = render_scene(2, 0, 96, 192)
    aug = Augment(64, 128, (0.5, 2.0), flip=True, color_jitter=0.3)
    for seed in range(5):
        out_rgb, out_label = aug(rgb, label, np.random.default_rng(seed))
        assert out_rgb.shape == (64, 128, 3) and out_label.shape == (64, 128)
        assert set(np.unique(out_label)) <= set(np.unique(label)) | {255}
    flip_only = Augment(96, 192, (1.0, 1.0), flip=True, color_jitter=0)
    flipped = [flip_only(rgb, label, np.random.default_rng(s)) for s in range(8)]
    assert any(np.array_equal(f[1], label[:, ::-1]) and np.array_equal(f[0], rgb[:, ::-1]) for f in flipped)


def test_loader_with_workers_gives_normalised_batches():
    data = build_dataset("synthetic", "train", 32, 64, MEAN, STD, augment=True, length=8)
    images, labels = next(iter(build_loader(data, 4, True, 2, False, 0)))
    assert images.shape == (4, 3, 32, 64) and images.dtype == torch.float32
    assert labels.shape == (4, 32, 64) and labels.dtype == torch.int64
    assert -3 < images.mean() < 3


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    label_ids = np.zeros((32, 64), np.uint8)          # 0 unlabeled -> 255
    label_ids[:, :20], label_ids[:, 20:40] = 7, 26    # road -> 0, car -> 13
    for city, name in (("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")):
        _write(tmp_path / "leftImg8bit" / "val" / city / f"{name}_leftImg8bit.png", np.full((32, 64, 3), 90, np.uint8))
        _write(tmp_path / "gtFine" / "val" / city / f"{name}_gtFine_labelIds.png", label_ids)
    data = build_dataset("cityscapes", "val", 32, 64, MEAN, STD, root=str(tmp_path))
    assert len(data) == 2
    _, label = data[0]
    assert label[0, 0] == 0 and label[0, 25] == 13 and label[0, 50] == 255


def test_folder_layout_pairs_images_and_masks(tmp_path):
    for name in ("a", "b", "c"):
        _write(tmp_path / "images" / f"{name}.png", np.zeros((16, 32, 3), np.uint8))
        _write(tmp_path / "masks" / f"{name}.png", np.full((16, 32), 11, np.uint8))
    data = build_dataset("folders", "train", 16, 32, MEAN, STD, root=str(tmp_path))
    assert len(data) == 3 and int(data[2][1].unique()) == 11
    data.validate()


def test_bad_folders_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing images directory"):
        build_dataset("folders", "train", 16, 32, MEAN, STD, root=str(tmp_path / "nothing"))
    _write(tmp_path / "images" / "a.png", np.zeros((16, 32, 3), np.uint8))
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="a.png: no mask"):
        build_dataset("folders", "train", 16, 32, MEAN, STD, root=str(tmp_path))
    _write(tmp_path / "masks" / "a.png", np.full((16, 32), 77, np.uint8))
    data = build_dataset("folders", "train", 16, 32, MEAN, STD, root=str(tmp_path))
    with pytest.raises(DatasetError, match=r"masks/a.png: ids \[77\] are outside the class table"):
        data.validate()
    (tmp_path / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="a.png: unreadable image"):
        data[0]
