"""Configuration of a training run (config/train/*.yaml), with the paper's Table 10 as defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass
class DataConfig:
    RANGES: ClassVar[dict] = {     # what training/config.py checks at load time, beside the types
        "height": (8, None), "width": (8, None), "train_size": (1, None), "val_size": (1, None),
        "test_size": (0, None), "difficulty": (0, 1), "scale_min": (0.01, None), "scale_max": (0.01, None),
        "color_jitter": (0, 1), "max_unknown_color_fraction": (0, 1)}

    kind: str = "synthetic"          # synthetic | cityscapes | folders
    root: str = ""                   # dataset directory (cityscapes, folders)
    height: int = 128                # network input (crop) size
    width: int = 256
    train_size: int = 2000           # synthetic: scenes per epoch
    val_size: int = 200              # checkpoint selection (best.pt)
    test_size: int = 0               # synthetic: held-out scenes scored once with best.pt (0 = none);
                                     # files: > 0 scores the dataset's "test" split
    test_split: str = "test"         # the split test_size scores (Cityscapes' test labels are withheld: val)
    test_input_sizes: list = field(default_factory=list)   # [[h, w], ...] network inputs the test split is
                                     # scored at, each at the label's full resolution; [] = [[height, width]]
    difficulty: float = 0.6          # synthetic: 0 easy .. 1 hard
    seed: int = 0                    # synthetic: scenes of data.seed; training scenes also vary with the run's seed
    augment: bool = True             # random scale and crop, flip, colour jitter (section IV.B)
    scale_min: float = 0.75          # augmentation: random scale range, then crop
    scale_max: float = 1.5
    flip: bool = True
    color_jitter: float = 0.3
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    classes: str = ""                # class definition file (docs/training.md); "" = Cityscapes' 19 train ids
    mask_format: str = "ids"         # folders: ids (uint8 class ids) | colors (RGB in the classes' colours)
    max_unknown_color_fraction: float = 0.01   # colors: share of pixels in no class's colour a dataset may have


@dataclass
class LossConfig:
    RANGES: ClassVar[dict] = {"ce_weight": (0, None), "dice_weight": (0, None), "binary_weight": (0, None),
                              "label_smoothing": (0, 1)}

    ce_weight: float = 1.0           # lambda1
    dice_weight: float = 1.0         # lambda2
    binary_weight: float = 1e-4      # lambda3
    label_smoothing: float = 0.1     # epsilon
    binary_reduction: str = "mean"   # mean (this project's variant) | sum (eq. 24 as written; losses.py)
    class_weights: list[float] | str | None = None   # CE weight per class: a list, or auto (median frequency)


@dataclass
class TrainConfig:
    RANGES: ClassVar[dict] = {
        "epochs": (1, None), "batch_size": (1, None), "lr": (0, None), "min_lr_ratio": (0, 1),
        "distill_weight": (0, None), "distill_temperature": (0.01, None), "iters_per_epoch": (0, None),
        "workers": (0, None)}
    CHOICES: ClassVar[dict] = {"device": (r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N")}

    name: str = "run"
    model: str = "tiny"              # preset name, YAML path, or torchvision:<architecture> (trained as float)
    model_overrides: list[str] = field(default_factory=list)   # key=value on the model: [weight_standardization=true]
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 18
    batch_size: int = 8              # global: split across DDP processes
    lr: float = 1e-3                 # Adam, betas (0.9, 0.999), no weight decay
    min_lr_ratio: float = 0.01
    phase_fractions: list[float] = field(default_factory=lambda: [50 / 180, 100 / 180, 30 / 180])
    binarize: bool = True            # false: the float baseline with the same budget
    binarization_order: str = "deepest_first"
    phases: str = "paper"            # paper (float, binarizing, binary) | binary_only (an already binarized model)
    init_from: str = ""              # checkpoint whose weights of matching name and shape start the model
    distill_weight: float = 0.0      # beyond the paper (ReActNet): KL to the phase-1 float model
    distill_temperature: float = 1.0
    iters_per_epoch: int = 0         # 0 = the whole training set; CI uses a few
    workers: int = 2
    seed: int = 0
    out_dir: str = "runs"
    tensorboard: bool = True
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    amp: str = "off"                 # off | bf16 | fp16 (autocast; fp16 with a gradient scaler), precision.py
    channels_last: bool = False      # NHWC activations: what GPU tensor cores want

    @property
    def run_dir(self) -> Path:
        """Where the run writes its checkpoints and logs: out_dir/name."""
        return Path(self.out_dir) / self.name
