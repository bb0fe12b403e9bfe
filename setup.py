"""pip install of the Python parts (the venv world); on a ROS install use colcon (CMakeLists.txt).

`bisegunet_ros` is the runtime (no torch); `training/` is installed as `bisegunet_training`
so that no top-level package named `training` is put on anyone's path. The generated
messages (`bisegunet_ros.msg`) are built in place by `make msgs` before this runs.
config/ and models/ travel inside the package as bisegunet_ros/share/ (bisegunet_ros.resources
finds them there, in a source checkout, or in a colcon install's share directory).
"""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

SHARED = ("config", "models")     # what CMakeLists.txt installs to share/bisegunet_ros as well
ZSTD_BACKPORT = "backports.zstd>=1.0; python_version < '3.14'"


class BuildPyWithShare(build_py):
    """Copies config/ and models/ into bisegunet_ros/share/ of the built package (not for editable
    installs: those find them in the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        for directory in SHARED:
            for source in sorted((root / directory).rglob("*")):
                if source.is_file():
                    target = Path(self.build_lib) / "bisegunet_ros" / "share" / source.relative_to(root)
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(
    name="bisegunet_ros",
    version="0.1.0",
    description="BiSegUNet semantic segmentation for ROS 2: node, training, export, rosbag evaluation",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["bisegunet_ros", "bisegunet_ros.*"])
    + ["bisegunet_training"]
    + ["bisegunet_training." + p for p in find_packages("training")],
    package_dir={"bisegunet_training": "training"},
    package_data={"bisegunet_ros": ["*.so"], "bisegunet_training": ["*.txt"]},
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "onnxruntime>=1.18", "PyYAML>=6"],
    extras_require={
        # bisegunet-eval-bag and bisegunet-make-bag (no torch): pip install "bisegunet_ros[eval]"
        # backports.zstd: zstd-compressed bags before Python 3.14 (Humble's 3.10), read by rosbags and bag_io
        "eval": ["rosbags>=0.10", ZSTD_BACKPORT, "matplotlib>=3.7", "tqdm>=4.60"],
        "training": ["torch>=2.3", "onnx>=1.16", "onnxscript>=0.1", "tqdm>=4.60", "matplotlib>=3.7",
                     "tensorboard>=2.14", "rosbags>=0.10", ZSTD_BACKPORT],
        # bench/pareto.py and `model: torchvision:<architecture>`: torchvision's architectures, random weights
        "compare": ["torchvision>=0.13"],
    },
    cmdclass={"build_py": BuildPyWithShare},
    entry_points={"console_scripts": [
        "bisegunet-segment-node = bisegunet_ros.segment_node:main",
        "bisegunet-eval-bag = bisegunet_ros.evaluation.evaluate_bag:main",
        "bisegunet-build-engine = bisegunet_ros.backends.tensorrt.engine_build:main",
        "bisegunet-train = bisegunet_training.train:main",
        "bisegunet-export = bisegunet_training.export:main",
        "bisegunet-quantize = bisegunet_training.quantize:main",
        "bisegunet-make-bag = bisegunet_training.make_bag:main",
        "bisegunet-make-dataset = bisegunet_training.make_dataset:main",
        "bisegunet-profile = bisegunet_training.profile:main",
    ]},
)
