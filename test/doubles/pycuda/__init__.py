"""Contract test double of pycuda (the parts bisegunet_ros uses), over simulated_gpu.

Not the real library: it exists because pycuda cannot be built here (no CUDA). It follows
pycuda's documented semantics where the code depends on them; see simulated_gpu.py.
"""
VERSION_TEXT = "2024.1.2 (test double)"
