"""`bisegunet-make-bag`: a ROS 2 bag of camera frames and ground-truth labels, for bisegunet-eval-bag.

    bisegunet-make-bag OUT --source synthetic [--frames 100 --height 512 --width 1024 --difficulty 0.6]
    bisegunet-make-bag OUT --source cityscapes --root DATA [--split val]
    bisegunet-make-bag OUT --source folders --root DATA [--classes DATA/classes.yaml --mask-format colors]
                                                              # DATA/images/*.png + DATA/masks/*.png

Writes /camera/image_raw (rgb8 or bgr8 Image, or JPEG CompressedImage on .../compressed) and
/camera/labels (mono8 class ids: Cityscapes train ids, or for folders the ids of
--classes; 255 = ignore) with equal header stamps, at --fps, in mcap (default)
or sqlite3 storage.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from bisegunet_ros.cli_args import COUNT_OR_ALL, FRACTION, PIXELS, POSITIVE
from bisegunet_ros.evaluation.bag_io import write_labelled_frames

from .data import (HELD_OUT_BAG_SEED, MASK_FORMATS, DatasetError, FolderDataset, check_masks, class_definition,
                   render_scene)
from .data.datasets import PairedFiles, cityscapes_pairs, folder_pairs

log = logging.getLogger(__name__)
# The dataset readers name training config keys; here the user typed flags (longest key first).
FLAGS = {"data.mask_format=colors": "--mask-format colors", "data.mask_format": "--mask-format",
         "data.max_unknown_color_fraction": "--max-unknown-color-fraction", "data.root": "--root",
         "data.classes": "--classes"}


def in_flags(message: str) -> str:
    """An error of the shared dataset code, with the training config keys it names turned into this tool's flags."""
    for key, flag in FLAGS.items():
        message = message.replace(key, flag)
    return message


def frames_of(args):
    """(rgb, labels) pairs from the chosen source, at their own size (synthetic: --height x --width)."""
    if args.source == "synthetic":
        return (render_scene(args.seed, i, args.height, args.width, args.difficulty) for i in range(args.frames))
    from bisegunet_ros.classes import cityscapes_label_to_train_id

    if args.source == "cityscapes":
        dataset = PairedFiles(cityscapes_pairs(args.root, args.split)[: args.frames or None],
                              cityscapes_label_to_train_id(), 0, 0)
    else:   # the dataset's own class ids, as training reads them
        dataset = FolderDataset(folder_pairs(args.root, args.split)[: args.frames or None],
                                class_definition(args.classes or "", "folders"), args.mask_format, 0, 0)
        check_masks(dataset, args.max_unknown_color_fraction, args.classes)
    return (dataset.load(i) for i in range(len(dataset)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="bag directory to create")
    parser.add_argument("--source", choices=("synthetic", "cityscapes", "folders"), default="synthetic")
    parser.add_argument("--root", help="dataset directory (cityscapes, folders)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--classes", help="folders: class definition file (default: Cityscapes' 19 train ids)")
    parser.add_argument("--mask-format", choices=MASK_FORMATS, default="ids", help="folders: masks as class "
                        "ids or in the classes' colours")
    parser.add_argument("--max-unknown-color-fraction", type=FRACTION, default=0.01,
                        help="folders, colors: share of mask pixels in no class's colour allowed (ignored)")
    parser.add_argument("--frames", type=COUNT_OR_ALL, default=100, help="number of frames (0 = all, for datasets)")
    parser.add_argument("--height", type=PIXELS, default=512, help="synthetic: frame height H in pixels")
    parser.add_argument("--width", type=PIXELS, default=1024, help="synthetic: frame width W in pixels")
    parser.add_argument("--difficulty", type=FRACTION, default=0.6, help="synthetic: 0 easy .. 1 hard")
    parser.add_argument("--seed", type=int, default=HELD_OUT_BAG_SEED,
                        help="synthetic: scene seed (default: one that training refuses as a split's seed)")
    parser.add_argument("--fps", type=POSITIVE, default=10.0)
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--format", choices=("rgb8", "bgr8", "jpeg"), default="rgb8")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.source != "synthetic" and not args.root:
        parser.error(f"--source {args.source} needs --root")
    if args.source != "folders" and (args.classes or args.mask_format != "ids"):
        parser.error("--classes and --mask-format are for --source folders")
    if args.source == "synthetic" and args.frames == 0:
        parser.error("--frames 0 (all) is for datasets; give the number of synthetic frames")
    if args.out.exists():
        log.error("%s exists; remove it or choose another output path", args.out)
        return 1
    try:
        frames = tqdm(frames_of(args), total=args.frames or None, desc="frames", unit="frame", disable=None)
        classes = class_definition(args.classes or "", "folders").table.names   # "": Cityscapes' train ids
        count = write_labelled_frames(args.out, frames, args.fps, args.frame_id, image_format=args.format,
                                      storage=args.storage, class_names=list(classes))
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        shutil.rmtree(args.out, ignore_errors=True)     # created by this run: no half-written bag stays
        log.error("%s", in_flags(str(exc)))
        return 1
    log.info("wrote %d frames to %s (%s, %s)", count, args.out, args.storage, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
