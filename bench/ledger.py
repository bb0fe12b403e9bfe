"""A bench's finished trainings, kept in the repository: runs/ does not outlive a sitting, a ledger does.

`NAME.runs.json` beside a bench's results holds the result of every training it has finished
(bench.training.run_result: score, command, training scenes' seed...). A bench records into it
after training and on `--record` (before a sitting ends), and trains again only what is neither
finished on disk nor recorded with the same command and training scenes (bench.training.finished_result).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path


def ledger_path(stem: Path) -> Path:
    """bench/pareto -> bench/pareto.runs.json"""
    return stem.with_name(stem.name + ".runs.json")


def read_ledger(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def command_key(command: str) -> tuple[str, ...]:
    """What a training command trains: its tokens less the run's name, the device it ran on and what to do with
    an existing run folder (--overwrite, which the benches' runner passes; --resume and its checkpoint)."""
    tokens, kept = shlex.split(command), []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--resume":
            skip = True
        elif not token.startswith(("name=", "device=", "--resume=")) and token != "--overwrite":
            kept.append(token)
    return tuple(kept)


def write_ledger(path: Path, results: list[dict]) -> None:
    """The finished trainings' results, merged with those recorded before: one per run name and command (a run
    of another budget under the same name is another run)."""
    def key(r: dict) -> tuple:
        return r["name"], command_key(r.get("command", ""))

    merged = {key(r): r for r in read_ledger(path)} | {key(r): r for r in results}
    path.write_text(json.dumps({"runs": sorted(merged.values(), key=lambda r: (r["seed"], r["name"]))}, indent=1)
                    + "\n")
