"""pip install of the Python parts (the venv world); on a ROS install use colcon (CMakeLists.txt).

`bisegunet_ros` is the runtime (no torch); `training/` is installed as `bisegunet_training`
so that no top-level package named `training` is put on anyone's path. The generated
messages (`bisegunet_ros.msg`) are built in place by `make msgs` before this runs.
"""
from setuptools import find_packages, setup

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
        "training": ["torch>=2.3", "onnx>=1.16", "onnxscript>=0.1", "tqdm>=4.60", "matplotlib>=3.7",
                     "tensorboard>=2.14", "rosbags>=0.10"],
        # bench/compare.py and `model: torchvision:<architecture>`: torchvision's architectures, random weights
        "compare": ["torchvision>=0.13"],
    },
    entry_points={"console_scripts": [
        "bisegunet-segment-node = bisegunet_ros.segment_node:main",
        "bisegunet-eval-bag = bisegunet_ros.evaluate_bag:main",
        "bisegunet-build-engine = bisegunet_ros.engine_build:main",
        "bisegunet-train = bisegunet_training.train:main",
        "bisegunet-export = bisegunet_training.export:main",
        "bisegunet-quantize = bisegunet_training.quantize:main",
        "bisegunet-make-bag = bisegunet_training.make_bag:main",
        "bisegunet-make-dataset = bisegunet_training.make_dataset:main",
        "bisegunet-profile = bisegunet_training.profile:main",
    ]},
)
