# The venv world: everything runs from .venv, created and filled by `make setup`.
# On a vehicle with ROS 2 installed use colcon instead (README.md, docs/install.md).

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV        := .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip
PYTEST_ARGS ?=

# DDS stays on this machine, on a domain of its own (never the LAN, never another run).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell shuf -i 1-100 -n 1)

MSG_STAMP   := bisegunet_ros/msg/__init__.py
SETUP_STAMP := $(VENV)/.setup-done

.PHONY: setup msgs test demo bench clean

setup: $(SETUP_STAMP)

$(VENV)/bin/python:
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.requirements-done: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

# rosidl against the PyPI wheels: libraries into the venv prefix, the generated Python
# (bisegunet_ros.msg and its type-support extensions) copied into the source package so that
# the editable install below sees one package (see CMakeLists.txt for the name clash).
msgs: $(MSG_STAMP)
$(MSG_STAMP): $(VENV)/.requirements-done CMakeLists.txt package.xml $(wildcard msg/*.msg)
	rm -rf build/msgs build/pygen bisegunet_ros/msg
	AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
	  cmake -S . -B build/msgs -G Ninja -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	    -DPython3_EXECUTABLE=$(abspath $(PY)) -DBISEGUNET_INSTALL_RUNTIME=OFF -DBUILD_TESTING=OFF \
	    -DPYTHON_INSTALL_DIR=$(abspath build/pygen) > build-msgs.log 2>&1 \
	  && cmake --build build/msgs >> build-msgs.log 2>&1 && cmake --install build/msgs >> build-msgs.log 2>&1 \
	  || { tail -40 build-msgs.log; exit 1; }
	rm -f build-msgs.log
	cp -r build/pygen/bisegunet_ros/msg build/pygen/bisegunet_ros/*.so bisegunet_ros/

$(SETUP_STAMP): $(MSG_STAMP) setup.py
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(PY) -m pytest test $(PYTEST_ARGS)

# The main job: a synthetic bag replayed live through the segmentation node (shipped model),
# evaluated against its labels; prints mIoU, fps, latency and the report's path.
DEMO_MODEL  ?= models/bisegunet_tiny.onnx
DEMO_FRAMES ?= 60
DEMO_OUT    ?= build/demo
demo: setup
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(PY) -m bisegunet_training.make_bag $(DEMO_OUT)/bag --frames $(DEMO_FRAMES) --height 512 --width 1024 --fps 10
	$(PY) -m bisegunet_ros.evaluation.evaluate_bag $(DEMO_OUT)/bag --live --model $(DEMO_MODEL) --backend onnxruntime \
	  --out $(DEMO_OUT)/report

# BiSegUNet (tiny, small; float, binarized) against torchvision's LR-ASPP and DeepLabV3 (MobileNetV3),
# same training budget, then accuracy, size and ONNX Runtime latency: bench/RESULTS.md, .json and
# miou_vs_latency.png (about 40 min on 2 cores; CI runs `--smoke` through test/test_compare.py).
bench: setup
	$(PY) -m bench.compare

clean:
	rm -rf build bisegunet_ros/msg bisegunet_ros/*.so $(SETUP_STAMP) $(MSG_STAMP)
