"""Every command line in the code blocks of README.md and docs/*.md against the code it names.

A `bisegunet-*` tool, `python -m bench.*` or `torchrun -m bisegunet_training.train` line is parsed by
the tool's own argparse parser (its main() is stopped right after parse_args, so nothing runs);
a training command's `--config` and `key=value` overrides are loaded as bisegunet-train loads them
(with the model config they name); a `make` line must be a target `make -n` accepts. Synopsis
lines are expanded: `[...]` is kept without its brackets, `a|b` gives one command per alternative,
`key=value` and `...` placeholders are dropped. The cheap ones run: bisegunet-profile, and a block
that renders scenes with bisegunet-make-dataset and trains on them (the GPU recipe) runs the
rendering with a few scenes and builds the trainer on its output, device=cpu, as far as the first step.
"""
from __future__ import annotations

import argparse
import itertools
import re
import shlex
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bisegunet_ros.resources import ResourceError, find_resource

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(bisegunet-[a-z-]+|python3? -m bench\.\w+|torchrun |make )")
PLACEHOLDERS = {"key=value", "...", "key=value ..."}
TRAIN_MODULE = "bisegunet_training.train"


def code_blocks(path: Path) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", path.read_text(), re.S | re.M)


def expand(line: str) -> list[list[str]]:
    """The argument lists a (synopsis) line stands for."""
    words = [w.removeprefix("[") for w in shlex.split(line, comments=True)]
    words = [w[:-1] if w.endswith("]") and "[" not in w else w for w in words]    # not model_overrides=[...]
    words = [w for w in words if w and w not in PLACEHOLDERS]
    options = [w.split("|") if "|" in w and not w.startswith("'") else [w] for w in words]
    return [list(choice) for choice in itertools.product(*options)]


def documented() -> list[tuple[str, int, list[list[str]]]]:
    """(document, block number, [argv of each command line in the block])."""
    found = []
    for path in DOCS:
        for number, block in enumerate(code_blocks(path)):
            lines = block.replace("\\\n", " ").splitlines()
            commands = [argv for line in lines if COMMAND.match(line.strip()) for argv in expand(line.strip())]
            if commands:
                found.append((path.name, number, commands))
    return found


BLOCKS = documented()


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        super().__init__()
        self.namespace = namespace


def parse_only(monkeypatch, main, argv: list[str], line: str) -> argparse.Namespace:
    """What `main(argv)`'s own parser makes of argv; main stops there."""
    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse)
        try:
            main(argv)
        except Parsed as parsed:
            return parsed.namespace
        except SystemExit as exc:
            pytest.fail(f"the parser refuses `{line}` (exit {exc.code})")
    pytest.fail(f"`{line}`: main returned without parsing its arguments")


def tool(name: str):
    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == name]
    return entry.load()


def training_config(args: argparse.Namespace):
    """The TrainConfig a bisegunet-train command would train with (a user's own file: the defaults)."""
    from bisegunet_training.config import load_config
    from bisegunet_training.model import load_model_config
    from bisegunet_training.train_config import TrainConfig

    try:
        path = find_resource("train", args.config)
    except ResourceError:
        path = None                        # my_data.yaml: the user's file; the overrides still must fit
    cfg = load_config(path, TrainConfig, args.overrides)
    load_model_config(cfg.model, cfg.model_overrides)
    return cfg


def check(monkeypatch, argv: list[str]) -> tuple[str, argparse.Namespace | None]:
    """(program, parsed arguments) of one documented command, checked against the code."""
    line = shlex.join(argv)
    if argv[0] == "make":
        result = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"`{line}`: {result.stderr}"
        return "make", None
    if argv[0] == "torchrun":
        argv = ["python", *argv[argv.index("-m"):]]
    if argv[0].startswith("python"):
        module = argv[2]
        import importlib

        main = importlib.import_module(module).main
        program = "bisegunet-train" if module == TRAIN_MODULE else module
        argv = argv[3:]
    else:
        program, main, argv = argv[0], tool(argv[0]), argv[1:]
    args = parse_only(monkeypatch, main, argv, line)
    if program == "bisegunet-train":
        training_config(args)
    return program, args


@pytest.mark.parametrize("document, number, commands", BLOCKS, ids=[f"{d}-block{n}" for d, n, _ in BLOCKS])
def test_documented_commands_fit_the_code(monkeypatch, document, number, commands):
    for argv in commands:
        check(monkeypatch, argv)


def test_the_documents_show_the_tools():
    """The extraction finds the commands (an empty list would pass everything above)."""
    programs = {argv[0] for _, _, commands in BLOCKS for argv in commands}
    assert {"bisegunet-train", "bisegunet-make-dataset", "bisegunet-eval-bag", "bisegunet-export", "make",
            "python"} <= programs


def test_documented_profile_runs(monkeypatch, capsys):
    (argv,) = {tuple(argv) for _, _, commands in BLOCKS for argv in commands if argv[0] == "bisegunet-profile"}
    assert tool("bisegunet-profile")(list(argv[1:])) == 0
    assert "parameters" in capsys.readouterr().out


def test_documented_rendered_data_recipes_reach_the_first_step(monkeypatch, tmp_path):
    """A block that renders scenes and trains on them: its make-dataset, with a few scenes, gives every split
    its training config asks for (the GPU recipe's test_size 200 needs --test)."""
    from bisegunet_training.make_dataset import make_dataset
    from bisegunet_training.train import Trainer

    recipes = 0
    for _, _, commands in BLOCKS:
        parsed = [check(monkeypatch, argv) for argv in commands]
        rendered = {str(args.out): args for program, args in parsed if program == "bisegunet-make-dataset"}
        for program, args in parsed:
            if program != "bisegunet-train":
                continue
            roots = [o.partition("=")[2] for o in args.overrides if o.startswith("data.root=")]
            if not roots or roots[0] not in rendered:
                continue
            scenes = rendered[roots[0]]
            out = tmp_path / f"recipe{recipes}"
            make_dataset(out, min(scenes.train, 2), min(scenes.val, 2), scenes.height, scenes.width,
                         scenes.difficulty, scenes.seed, 1, min(scenes.test, 2))
            args.overrides = [*args.overrides, f"data.root={out}", "device=cpu", "workers=0",
                              f"out_dir={tmp_path / 'runs'}"]
            cfg = training_config(args)
            assert (cfg.data.height, cfg.data.width) == (scenes.height, scenes.width), \
                f"{roots[0]} is rendered at {scenes.height}x{scenes.width} (HxW), trained at {cfg.data.height}x" \
                f"{cfg.data.width}"
            Trainer(cfg)
            recipes += 1
    assert recipes >= 1
