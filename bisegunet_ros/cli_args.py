"""argparse types for the numbers the command-line tools take, so a bad value stops before any work.

`--fps 0` or `--frames -1` is refused by argparse itself: one `error: argument --fps: ...` line that
says what is accepted, exit status 2, and nothing written. Sizes are given height first everywhere
(`--height H --width W`, `--size H W`), as the code and the ONNX metadata (input_size) hold them.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable


def ranged(kind: type = int, low: float | None = None, high: float | None = None,
           above: float | None = None) -> Callable[[str], int | float]:
    """An argparse type: a `kind` (int or float) in [low, high], or greater than `above`."""
    name = "an integer" if kind is int else "a number"
    limits = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
              f"<= {high}" if high is not None else ""]
    wanted = f"{name} {' and '.join(x for x in limits if x)}".strip()

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if ((low is not None and value < low) or (high is not None and value > high)
                or (above is not None and value <= above)):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = kind.__name__    # argparse names the type in its messages
    return parse


COUNT = ranged(int, low=1)               # frames, scenes, batch sizes
COUNT_OR_ALL = ranged(int, low=0)        # 0 = all
PIXELS = ranged(int, low=8)              # an image side; the smallest size the tools render and run
FRACTION = ranged(float, low=0, high=1)
POSITIVE = ranged(float, above=0)
