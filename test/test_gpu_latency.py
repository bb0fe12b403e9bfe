"""bench.gpu_latency's CPU side: arguments checked before anything runs, a clean refusal without CUDA.

Its measurements need a GPU (bench/gpu_session.sh runs it there); nothing in the suite requires one.
"""
from __future__ import annotations

import pytest
import torch

from bench import gpu_latency
from bench.pareto_models import ENTRIES


def test_it_times_one_model_per_architecture_of_the_pareto_table():
    assert sorted(gpu_latency.MODELS.values()) == sorted({e.model for e in ENTRIES})


@pytest.mark.parametrize("argv,message", [(["--sizes", "512x"], "expected HxW"), (["--sizes", "0x64"], "positive"),
                                          (["--batches", "0"], "--batches and --repetitions must be at least 1"),
                                          (["--models", "mobilenet"], "invalid choice: 'mobilenet'")])
def test_bad_arguments_are_one_error_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_latency.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot be seen")
def test_without_cuda_it_refuses_in_one_line_and_writes_nothing(tmp_path, capsys):
    assert gpu_latency.main(["--out", str(tmp_path / "gpu_latency")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "nothing measured" in err
    assert not list(tmp_path.iterdir())
