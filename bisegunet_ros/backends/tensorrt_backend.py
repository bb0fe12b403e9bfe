"""TensorRT 10 backend (vehicle only). Written in full by the export/backends issue."""
from __future__ import annotations

import importlib.util


def unavailable_reason() -> str | None:
    """Why TensorRT cannot be used here, or None when it can (tensorrt and pycuda importable)."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"python module '{module}' is not installed (it comes with JetPack on the vehicle)"
    return None
