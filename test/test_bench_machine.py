"""Every bench's results carry the machine's load from the bench's start to its write (bench/machine.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bench import machine


def test_results_name_the_processes_that_used_the_cpu_while_the_bench_ran(tmp_path):
    before = machine.load_snapshot()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])     # another busy process
    try:
        time.sleep(1.5)
        load = machine.load_record(before, top=10_000)
        markdown = machine.write_results(tmp_path / "x", {"machine": {"cpu": "c"}, "value": 1}, "# x\n")
    finally:
        spinner.kill()
        spinner.wait()
    busy = {p["pid"]: p for p in load["busy_others"]}
    assert busy[spinner.pid]["cpu_percent"] > 5 and "while True" in busy[spinner.pid]["command"]
    assert len(load["loadavg_before"]) == 3 and len(load["loadavg_after"]) == 3 and load["seconds"] >= 1.5
    written = json.loads((tmp_path / "x.json").read_text())
    assert written["value"] == 1 and written["machine"]["cpu"] == "c"
    assert set(written["machine"]["load"]) == {"loadavg_before", "loadavg_after", "seconds", "busy_others"}
    assert markdown == (tmp_path / "x.md").read_text() and "Machine load: load average (1, 5, 15 min)" in markdown
