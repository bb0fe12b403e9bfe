"""`bisegunet-train`: the paper's phased training (Algorithm 1, Table 10) on one or many processes.

    bisegunet-train --config config/train/tiny_synthetic.yaml [key=value ...] [--resume runs/NAME/last.pt | --overwrite]
    torchrun --nproc_per_node N -m bisegunet_training.train --config ...

Phase 1 float, phase 2 incremental binarization, phase 3 fully binary; Adam with a cosine
learning rate that restarts at each phase boundary. Rank 0 writes runs/<name>/: last.pt (every
epoch, atomically), best.pt (best validation mIoU once every binary layer is binary, or of the
whole run for a float baseline), metrics.jsonl, TensorBoard events and curves.png. Validation, every
epoch, scores at the network size (labels resized to it: `val_miou_network_res`); with a test split
(data.test_size), best.pt is scored once on it at the end at the label's full resolution (logits
upsampled bilinearly, the Cityscapes convention, docs/metrics.md), at each of data.test_input_sizes:
test.json. Under DDP each rank scores its own samples once and the confusion matrices are summed.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import random
import shlex
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from bisegunet_ros.metrics import ConfusionMatrix
from bisegunet_ros.resources import find_resource

from .checkpoint import copy_checkpoint, git_commit, load_checkpoint, save_checkpoint
from .class_weights import class_weights
from .config import load_config
from .data import DatasetError, build_dataset, build_loader, check_masks, class_definition, train_scene_seed
from .finetune import load_matching_weights
from .logs import RunLog, plot_curves
from .losses import SegmentationLoss
from .model import binary_layers, build_model, load_model_config
from .precision import Precision
from .schedule import binarization_order, make_schedule
from .train_config import TrainConfig

log = logging.getLogger(__name__)


class Distributed:
    """Rank, world size and device; torchrun sets WORLD_SIZE, a plain run is a world of one."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        cuda = torch.cuda.is_available() and device != "cpu"      # auto | cpu | cuda | cuda:N (TrainConfig)
        if device.startswith("cuda") and not cuda:
            raise RuntimeError(f"device {device!r} asked for but CUDA is not available; use device=cpu or auto")
        # torchrun gives each process its GPU (LOCAL_RANK); a single process may pick one with cuda:N
        local = int(os.environ.get("LOCAL_RANK", device.partition(":")[2] or "0"))
        if cuda and local >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")
            if cuda:
                torch.cuda.set_device(self.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks, on the CPU (through this rank's device: NCCL reduces only GPU tensors)."""
        if self.world > 1:
            tensor = tensor.to(self.device)
            dist.all_reduce(tensor)
        return tensor.cpu()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """Tear down together: a rank leaving while rank 0 still writes its files can abort in gloo."""
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Trainer:
    def __init__(self, cfg: TrainConfig, command: str = ""):
        self.cfg, self.command = cfg, command
        self.commit = git_commit()     # the code this run loaded, not whatever the tree holds at a later save
        self.dist = Distributed(cfg.device)
        if cfg.batch_size % self.dist.world:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {self.dist.world} processes")
        seed_everything(cfg.seed + self.dist.rank)
        self.classes = class_definition(cfg.data.classes, cfg.data.kind)    # the model's classes follow it
        self.model_config = replace(load_model_config(cfg.model, cfg.model_overrides),
                                    num_classes=len(self.classes.table))
        self.model = build_model(self.model_config)
        if cfg.init_from:
            load_matching_weights(self.model, cfg.init_from)
        self.precision = Precision(cfg.amp, cfg.channels_last, self.dist.device)
        self.model = self.precision.model(self.model)
        self.layers = dict(binary_layers(self.model))          # name -> layer, shallowest first
        # a model without binary layers (torchvision's) is a float baseline whatever cfg.binarize says
        self.binarize = cfg.binarize and bool(self.layers)
        if cfg.binarize and not self.layers:
            log.info("%s has no binary layers: trained as a float model", cfg.model)
        self.order = binarization_order(list(self.layers), cfg.binarization_order)
        self.schedule = make_schedule(cfg.phases, cfg.epochs, tuple(cfg.phase_fractions), cfg.min_lr_ratio)
        d = cfg.data
        common = dict(height=d.height, width=d.width, seed=d.seed, difficulty=d.difficulty, root=d.root,
                      mean=d.mean, std=d.std, classes=self.classes, mask_format=d.mask_format)
        self.train_set = build_dataset(d.kind, "train", length=d.train_size, augment=d.augment, scale_range=(
            d.scale_min, d.scale_max), flip=d.flip, color_jitter=d.color_jitter, run_seed=cfg.seed, **common)
        self.val_set = build_dataset(d.kind, "val", length=d.val_size, augment=False, **common)
        # held-out scenes scored once, with the checkpoint the validation split chose (best.pt), at the
        # label's resolution for each network input size
        if d.test_size > 0 and d.test_split == "val":
            log.warning("data.test_split=val: the test score is on the split that chose best.pt (selection-biased)")
        sizes = d.test_input_sizes or [[d.height, d.width]]
        if not all(isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s) for s in sizes):
            raise ValueError(f"data.test_input_sizes must be [height, width] pairs of positive integers, e.g. "
                             f"[[1024, 2048], [512, 1024]]; got {d.test_input_sizes!r}")
        test_sets = {(h, w): build_dataset(d.kind, d.test_split, length=d.test_size, augment=False,
                                           full_resolution_labels=True, **{**common, "height": h, "width": w})
                     for h, w in sizes} if d.test_size > 0 else {}
        scan = check_masks(self.train_set, d.max_unknown_color_fraction, d.classes, cfg.workers)
        for split in (self.val_set, *test_sets.values()):      # a bad mask stops the run before the first step
            check_masks(split, d.max_unknown_color_fraction, d.classes, cfg.workers)
        self.loss = SegmentationLoss(**{**asdict(cfg.loss), "class_weights": class_weights(
            cfg.loss.class_weights, self.train_set, scan, cfg.workers)})
        per_rank = cfg.batch_size // self.dist.world
        self.train_loader = build_loader(self.train_set, per_rank, shuffle=True, workers=cfg.workers,
                                         distributed=self.dist.world > 1, seed=cfg.seed)
        self.val_loader = build_loader(self.val_set, per_rank, shuffle=False, workers=cfg.workers,
                                       distributed=self.dist.world > 1, seed=cfg.seed)
        # one sample a batch: labels at their own resolution need not share a size
        self.test_loaders = {size: build_loader(test_set, 1, shuffle=False, workers=cfg.workers,
                                                distributed=self.dist.world > 1, seed=cfg.seed)
                             for size, test_set in test_sets.items()}
        self.steps = cfg.iters_per_epoch or len(self.train_loader)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: self.schedule.lr_factor(step / self.steps))
        # alphas of layers still in float get no gradient: DDP must expect unused parameters
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)
                    if self.dist.world > 1 else self.model)
        self.run_dir = cfg.run_dir
        self.start_epoch, self.best_miou, self.teacher = 0, -1.0, None

    # State

    def set_binarization(self, epoch: int) -> int:
        count = self.schedule.binarized_count(epoch, len(self.order)) if self.binarize else 0
        for i, name in enumerate(self.order):
            self.layers[name].binarized = i < count
        return count

    def state(self, epoch: int) -> dict:
        return {"model_config": asdict(self.model_config), "model": self.model.state_dict(),
                "binarized": {n: bool(layer.binarized) for n, layer in self.layers.items()},
                "data": {"height": self.cfg.data.height, "width": self.cfg.data.width, "mean": self.cfg.data.mean,
                         "std": self.cfg.data.std, "class_names": list(self.train_set.class_names),
                         "palette": [list(c) for c in self.train_set.classes.palette]},
                "epoch": epoch + 1, "best_miou": self.best_miou, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "train_config": asdict(self.cfg),
                "teacher": self.teacher.state_dict() if self.teacher is not None else None,
                "scaler": self.precision.state_dict(),
                "command": self.command, "commit": self.commit}

    def resume(self, path: str | Path) -> None:
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        for name, on in state["binarized"].items():
            self.layers[name].binarized = on
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.precision.load_state_dict(state.get("scaler"))
        self.start_epoch, self.best_miou = state["epoch"], state["best_miou"]
        if state.get("teacher") is not None:
            self.teacher = self._frozen_copy()
            self.teacher.load_state_dict(state["teacher"])
        log.info("resumed %s at epoch %d (best mIoU %.4f)", path, self.start_epoch, self.best_miou)

    def _frozen_copy(self) -> torch.nn.Module:
        teacher = copy.deepcopy(self.model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # Loops

    def train_epoch(self, epoch: int) -> dict:
        self.ddp.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        sums, batches = {}, 0
        progress = tqdm(self.train_loader, total=self.steps, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                        disable=not self.dist.main, leave=False)
        binary_weights = [self.layers[n].weight for n in self.order if self.layers[n].binarized]
        for images, labels in progress:
            images, labels = self.precision.images(images), labels.to(self.dist.device)
            with self.precision.autocast():      # the network in bf16/fp16 if asked; losses in fp32
                logits = self.ddp(images).float()
            loss, parts = self.loss(logits, labels, binary_weights)
            if self.teacher is not None and self.cfg.distill_weight > 0:
                t = self.cfg.distill_temperature
                with torch.no_grad(), self.precision.autocast():
                    target = F.softmax(self.teacher(images).float() / t, dim=1)
                distill = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean") * t * t
                distill = distill / (logits.shape[2] * logits.shape[3])   # per pixel, like the CE term
                loss = loss + self.cfg.distill_weight * distill
                parts["distill"] = distill.item()
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.step(loss, self.optimizer)
            self.scheduler.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            batches += 1
            progress.set_postfix(loss=f"{parts['total']:.3f}")
            if batches >= self.steps:
                break
        totals = self.dist.all_sum(torch.tensor([sums[k] for k in sorted(sums)] + [batches], dtype=torch.float64))
        return {k: float(v) / float(totals[-1]) for k, v in zip(sorted(sums), totals[:-1])}

    @torch.no_grad()
    def confusion(self, loader) -> ConfusionMatrix:
        """Confusion matrix over `loader`, summed over the ranks (each scored its own samples once). Logits
        smaller than the label are upsampled bilinearly to it: scored at the label's resolution."""
        self.model.eval()
        num_classes = len(self.train_set.class_names)
        matrix = ConfusionMatrix(num_classes)
        for images, labels in loader:   # in fp32, as the exported model runs: no autocast
            logits = self.model(self.precision.images(images))
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
            matrix.update(labels.numpy(), logits.argmax(1).cpu().numpy())
        total = self.dist.all_sum(torch.from_numpy(matrix.matrix))
        return ConfusionMatrix(num_classes, matrix=total.numpy())

    def validate(self, loader=None) -> dict:
        """Summary of the confusion matrix over `loader` (the validation split by default)."""
        return self.confusion(loader or self.val_loader).summary(list(self.train_set.class_names))

    def test(self) -> dict | None:
        """Score best.pt once on the test split, at the label's resolution for each network input size; rank 0
        writes runs/NAME/test.json (the first size's scores at the top). None without a test split or a
        best.pt (a binarized run that never became fully binary)."""
        best = self.run_dir / "best.pt"
        self.dist.barrier()                                  # rank 0 has finished writing best.pt
        if not self.test_loaders or not best.is_file():
            return None
        state = load_checkpoint(best)
        self.model.load_state_dict(state["model"])
        for name, on in state["binarized"].items():
            self.layers[name].binarized = on
        scores = {}
        for (h, w), loader in self.test_loaders.items():
            summary = self.validate(loader)
            scores[f"{h}x{w}"] = {k: summary[k] for k in ("miou", "mean_dice", "pixel_accuracy")}
        first = next(iter(scores.values()))
        result = {"checkpoint": str(best), "device": str(self.dist.device), "epoch": state["epoch"] - 1,
                  "val_miou_network_res": state["best_miou"], "test_split": self.cfg.data.test_split,
                  "test_scenes": len(next(iter(self.test_loaders.values())).dataset),
                  "test_scored_at": "label resolution (logits upsampled bilinearly)", "test_miou": first["miou"],
                  "test_mean_dice": first["mean_dice"], "test_pixel_accuracy": first["pixel_accuracy"],
                  "test_by_input_size": scores,
                  "train_scene_seed": train_scene_seed(self.cfg.data.kind, self.cfg.data.seed, self.cfg.seed),
                  "command": state.get("command", "")}
        if self.dist.main:
            (self.run_dir / "test.json").write_text(json.dumps(result, indent=2) + "\n")
            for size, s in scores.items():
                log.info("test mIoU %.4f on %d held-out scenes at input %s, scored at the label's resolution "
                         "(best.pt, epoch %d)", s["miou"] or 0, result["test_scenes"], size, result["epoch"] + 1)
        return result

    def fit(self) -> dict:
        cfg, main = self.cfg, self.dist.main
        runlog = RunLog(self.run_dir, cfg.tensorboard, self.start_epoch) if main else None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            log.info("training %s: %d epochs (phases start at %s), %d binary layers, %d steps per epoch",
                     cfg.name, cfg.epochs, self.schedule.boundaries, len(self.order), self.steps)
        summary = {}
        for epoch in range(self.start_epoch, cfg.epochs):
            if cfg.distill_weight > 0 and self.binarize and self.teacher is None and \
                    epoch == self.schedule.boundaries[0]:
                self.teacher = self._frozen_copy()       # the float model at the end of phase 1
            count = self.set_binarization(epoch)
            started = time.perf_counter()
            losses = self.train_epoch(epoch)
            summary = self.validate()
            fully_binary = count == len(self.order) or not self.binarize
            improved = fully_binary and summary["miou"] is not None and summary["miou"] > self.best_miou
            if improved:
                self.best_miou = summary["miou"]
            row = {"epoch": epoch, "phase": self.schedule.phase(epoch) if self.binarize else 1,
                   "binarized_fraction": count / max(len(self.order), 1), "lr": self.optimizer.param_groups[0]["lr"],
                   **{f"loss_{k}": v for k, v in losses.items()}, "val_miou_network_res": summary["miou"],
                   "val_mean_dice_network_res": summary["mean_dice"],
                   "val_pixel_accuracy_network_res": summary["pixel_accuracy"],
                   "seconds": time.perf_counter() - started, "threads": torch.get_num_threads()}
            if main:
                runlog.epoch(row)
                state = self.state(epoch)
                save_checkpoint(self.run_dir / "last.pt", state)
                if improved:
                    copy_checkpoint(self.run_dir / "last.pt", self.run_dir / "best.pt")
                log.info("epoch %d phase %d binary %.0f%% loss %.4f val mIoU (network res) %.4f%s", epoch + 1, row["phase"],
                         100 * row["binarized_fraction"], losses["total"], summary["miou"] or 0,
                         " (best)" if improved else "")
        if main:
            runlog.close()
            plot_curves(self.run_dir / "metrics.jsonl", self.schedule.boundaries, self.run_dir / "curves.png")
        test = self.test()
        self.dist.close()
        return {"best_miou": self.best_miou, "last": summary, "test": test}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training config: a name (tiny_synthetic, ci) or a YAML path")
    parser.add_argument("--resume", help="checkpoint to continue from (runs/<name>/last.pt)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run of the same name (its directory is emptied first)")
    parser.add_argument("overrides", nargs="*", help="key=value, dotted for nested keys (data.height=256)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(find_resource("train", args.config), TrainConfig, args.overrides)
        existing = not args.resume and cfg.run_dir.is_dir() and any(cfg.run_dir.iterdir())
        if existing and not args.overwrite:
            raise FileExistsError(f"{cfg.run_dir} holds a run named {cfg.name!r} already; give another name=NAME, "
                                  f"continue it with --resume {cfg.run_dir / 'last.pt'}, or replace it with "
                                  "--overwrite")
        trainer = Trainer(cfg, command=shlex.join(["bisegunet-train", *(argv if argv is not None else sys.argv[1:])]))
        if args.resume:
            trainer.resume(args.resume)
        if existing and trainer.dist.main:     # everything checked: only now does the old run go
            shutil.rmtree(cfg.run_dir)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    try:
        result = trainer.fit()
    except DatasetError as exc:  # found while loading a sample: name the file, no traceback
        log.error("%s", exc)
        return 2
    if trainer.dist.main:
        test = f"; test mIoU {result['test']['test_miou'] or 0:.4f}" if result["test"] else ""
        print(f"best val mIoU (network res) {result['best_miou']:.4f}{test}; checkpoints in {trainer.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
