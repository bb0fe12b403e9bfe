"""A bench's finished trainings, kept in the repository: runs/ does not outlive a sitting, a ledger does.

`NAME.runs.json` beside a bench's results holds the result of every training it has finished
(bench.training.run_result: score, command, training scenes' seed...). A bench records into it
after training and on `--record` (before a sitting ends), and trains again only what is neither
finished on disk nor recorded with the same command and training scenes (bench.training.finished_result).
"""
from __future__ import annotations

import json
from pathlib import Path


def ledger_path(stem: Path) -> Path:
    """bench/pareto -> bench/pareto.runs.json"""
    return stem.with_name(stem.name + ".runs.json")


def read_ledger(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def write_ledger(path: Path, results: list[dict]) -> None:
    """The finished trainings' results, merged by run name with those recorded before."""
    merged = {r["name"]: r for r in read_ledger(path)} | {r["name"]: r for r in results}
    path.write_text(json.dumps({"runs": sorted(merged.values(), key=lambda r: (r["seed"], r["name"]))}, indent=1)
                    + "\n")
