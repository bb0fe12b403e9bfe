"""`bisegunet-make-dataset`: render synthetic street scenes once to image/mask folders.

    bisegunet-make-dataset OUT [--train 20000 --val 200 --test 200 --height 128 --width 256 --difficulty 0.6
                               --workers N --seed 0 --run-seed 0]

Rendering scenes on the fly costs CPU time a fast GPU waits for (bench/data_speed.md measures both
paths). Rendered once, `data.kind=folders data.root=OUT` trains from PNG files instead:
OUT/{train,val,test}/{images,masks}/NNNNNN.png (test only with --test), masks as single-channel
Cityscapes train ids (255 = ignore), the layout and id format the `folders` kind reads. The scenes
are exactly those of `data.kind=synthetic` with the same seeds and difficulty (training scenes of
--run-seed, the run's `seed`: one folder per run seed for a seed study): training scenes
rendered at `TRAIN_RENDER_SCALE` times the network size (room for random scale and crop),
validation and test scenes from their own seeds at the network size, never a training scene.
The work is numpy and OpenCV, on all cores; no torch code here.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import cv2
from tqdm import tqdm

from bisegunet_ros.cli_args import COUNT, COUNT_OR_ALL, FRACTION, PIXELS

from .data import split_seed
from .data.scenes import TRAIN_RENDER_SCALE, render_scene

log = logging.getLogger(__name__)
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]   # lossless either way; level 1 writes fast, files ~10 % larger


def write_scene(index: int, out: Path, seed: int, height: int, width: int, difficulty: float) -> None:
    rgb, label = render_scene(seed, index, height, width, difficulty)
    name = f"{index:06d}.png"
    if not (cv2.imwrite(str(out / "images" / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), PNG_FAST)
            and cv2.imwrite(str(out / "masks" / name), label, PNG_FAST)):
        raise OSError(f"{out / 'images' / name}: could not write")


def render_split(out: Path, count: int, seed: int, height: int, width: int, difficulty: float, workers: int,
                 desc: str) -> None:
    """`count` scenes of `seed` to out/images and out/masks, on `workers` processes."""
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    job = partial(write_scene, out=out, seed=seed, height=height, width=width, difficulty=difficulty)
    if workers <= 1:
        for index in tqdm(range(count), desc=desc, unit="scene", disable=None):
            job(index)
        return
    with ProcessPoolExecutor(workers) as pool:
        for _ in tqdm(pool.map(job, range(count), chunksize=16), total=count, desc=desc, unit="scene", disable=None):
            pass


def make_dataset(out: Path, train: int, val: int, height: int, width: int, difficulty: float = 0.6, seed: int = 0,
                 workers: int = 1, test: int = 0, run_seed: int = 0) -> Path:
    """Render the training, validation and (test > 0) test split of `seed` under `out` (module docstring);
    each split from its own seed, as data.kind=synthetic draws them."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty; choose a new directory")
    if min(train, val) < 1 or min(height, width) < 8:
        raise ValueError(f"need at least one scene per split and 8x8 pixels, got train={train} val={val} "
                         f"{height}x{width}")
    if not 0 <= difficulty <= 1:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    render_split(out / "train", train, split_seed(seed, "train", run_seed), round(height * TRAIN_RENDER_SCALE),
                 round(width * TRAIN_RENDER_SCALE), difficulty, workers, "train")
    render_split(out / "val", val, split_seed(seed, "val"), height, width, difficulty, workers, "val")
    if test > 0:
        render_split(out / "test", test, split_seed(seed, "test"), height, width, difficulty, workers, "test")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory to create")
    parser.add_argument("--train", type=COUNT, default=4000, help="training scenes (data.train_size of synthetic)")
    parser.add_argument("--val", type=COUNT, default=200, help="validation scenes")
    parser.add_argument("--test", type=COUNT_OR_ALL, default=0, help="held-out test scenes (data.test_size)")
    parser.add_argument("--height", type=PIXELS, default=128, help="network input height H (data.height)")
    parser.add_argument("--width", type=PIXELS, default=256, help="network input width W (data.width)")
    parser.add_argument("--difficulty", type=FRACTION, default=0.6, help="0 easy .. 1 hard (data.difficulty)")
    parser.add_argument("--seed", type=int, default=0, help="data.seed")
    parser.add_argument("--run-seed", type=int, default=0, help="the run's seed: draws the training scenes")
    parser.add_argument("--workers", type=COUNT, default=os.cpu_count() or 1, help="rendering processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    created = not args.out.exists()
    try:
        make_dataset(args.out, args.train, args.val, args.height, args.width, args.difficulty, args.seed, args.workers,
                     args.test, args.run_seed)
    except (FileExistsError, ValueError, OSError) as exc:
        if created:
            shutil.rmtree(args.out, ignore_errors=True)     # no half-rendered dataset stays
        log.error("%s", exc)
        return 1
    log.info("wrote %d training and %d validation scenes to %s; train with data.kind=folders data.root=%s",
             args.train, args.val, args.out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
