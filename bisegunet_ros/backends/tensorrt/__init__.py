"""The TensorRT 10 backend (the vehicle's path) and its engine tools.

- `availability`: whether TensorRT and pycuda can run here (imports nothing heavy at import time),
- `cuda_context`: the device's primary CUDA context, made current around every piece of CUDA work,
- `engine_cache`: which engine may run (key, sidecar, cache directory), plain Python,
- `engine_build`: ONNX -> engine with TensorRT's builder, and the `bisegunet-build-engine` CLI,
- `backend`: `TensorRTBackend`, the `Backend` that runs an engine.

Dependencies point one way: backend -> engine_build -> engine_cache, cuda_context, availability.
"""
