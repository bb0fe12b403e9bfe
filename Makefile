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
# The tests' own domain (test/isolation.py ignores the shell's ROS_DOMAIN_ID: on a vehicle, the car's graph).
export BISEGUNET_TEST_DOMAIN_ID ?= $(shell shuf -i 1-100 -n 1)

MSG_STAMP    := bisegunet_ros/msg/__init__.py
PREFIX_STAMP := $(VENV)/.prefix-done
SETUP_STAMP  := $(VENV)/.setup-done

# The launch system and the `ros2` command (not on PyPI), as wheels built from upstream, where this
# checkout has ../shared/ros2-python beside it (its README). Without it everything else still works
# and the launch tests skip.
ROS2_PYTHON ?= ../shared/ros2-python
ROS2_WHEELS := $(wildcard $(ROS2_PYTHON)/wheels/*.whl)
ROS2_STAMP  := $(if $(ROS2_WHEELS),$(VENV)/.ros2-python-done)

# The venv as an ament prefix: what `ros2 launch|run|topic` and launched nodes need to find it.
ROS_ENV     := AMENT_PREFIX_PATH=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH
# cmake + rosidl against PyPI's ROS 2 wheels; their fixes come from outside the CMakeLists.
ROSIDL_CMAKE = $(ROS_ENV) CMAKE_PREFIX_PATH=$(abspath $(VENV)) cmake -G Ninja \
  -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF \
  -DCMAKE_PROJECT_INCLUDE=$(abspath cmake/pypi_wheels_fix.cmake)
# $(call rosidl_build,source dir,build dir,extra cmake args): configure, build, install; log on failure only.
rosidl_build = rm -rf $(2) && mkdir -p $(2) && { $(ROSIDL_CMAKE) -S $(1) -B $(2) $(3) && cmake --build $(2) \
  && cmake --install $(2); } > $(2).log 2>&1 || { tail -40 $(2).log; exit 1; }

LAUNCH_ARGS ?=

.PHONY: setup msgs test launch demo bench clean

setup: $(SETUP_STAMP)

$(VENV)/bin/python:
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.requirements-done: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

# The launch wheels' PyPI dependencies, then the wheels with --no-deps (they declare ROS names such as
# ament_index_python, which pip's resolver would report missing; PyPI's `launch` is another project),
# and composition_interfaces (imported by launch_ros.actions) built like msg/.
ifneq ($(ROS2_STAMP),)
$(ROS2_STAMP): $(ROS2_WHEELS) cmake/pypi_wheels_fix.cmake | $(VENV)/.requirements-done
	$(PIP) install -q osrf-pycommon lark psutil packaging
	$(PIP) install -q --no-deps --no-index $(ROS2_WHEELS)
	$(call rosidl_build,$(ROS2_PYTHON)/src/composition_interfaces,build/composition_interfaces)
	touch $@
endif

# rosidl against the PyPI wheels: libraries, launch/, config/, models/, executables and the ament
# index marker into the venv prefix; the generated Python (bisegunet_ros.msg and its type-support
# extensions) copied into the source package, so that the editable install below is the one and
# only bisegunet_ros (see CMakeLists.txt for the name clash).
MSG_CMAKE_ARGS = -DBISEGUNET_INSTALL_PYTHON=OFF -DPYTHON_INSTALL_DIR=$(abspath build/pygen)
msgs: $(MSG_STAMP)
$(MSG_STAMP): $(VENV)/.requirements-done CMakeLists.txt package.xml cmake/pypi_wheels_fix.cmake $(wildcard msg/*.msg)
	rm -rf build/pygen bisegunet_ros/msg
	$(call rosidl_build,.,build/msgs,$(MSG_CMAKE_ARGS))
	cp -r build/pygen/bisegunet_ros/msg build/pygen/bisegunet_ros/*.so bisegunet_ros/

# An edited launch file, config or model reaches share/bisegunet_ros on the next `make setup`.
$(PREFIX_STAMP): $(MSG_STAMP) $(wildcard launch/* config/*.* config/*/* models/*)
	test -f build/msgs/cmake_install.cmake || { $(call rosidl_build,.,build/msgs,$(MSG_CMAKE_ARGS)); }
	cmake --install build/msgs > build/msgs-install.log 2>&1 || { cat build/msgs-install.log; exit 1; }
	touch $@

$(SETUP_STAMP): $(ROS2_STAMP) $(PREFIX_STAMP) setup.py
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(ROS_ENV) $(PY) -m pytest test $(PYTEST_ARGS)

# `ros2 launch bisegunet_ros segment.launch.py $(LAUNCH_ARGS)` from the venv, DDS on this machine.
# LAUNCH_ARGS is split before each `name:=` (so cameras:=[front, rear] needs no quotes; quotes are dropped).
# Launch runs in a process group of its own (set -m): Ctrl-C (SIGINT) or SIGTERM to make reaches launch
# and its nodes once, as a SIGINT to the group, the way a terminal's Ctrl-C does, and the recipe waits
# until launch has shut them down. The recipe's shell starts with SIGINT at its default: make started
# in the background of a script inherits SIGINT ignored, and bash cannot trap a signal ignored at entry.
launch: SHELL := env --default-signal=INT /bin/bash
launch: setup
	@echo "make launch: ROS_DOMAIN_ID=$$ROS_DOMAIN_ID; to join it from another shell:" \
	  "export ROS_DOMAIN_ID=$$ROS_DOMAIN_ID; source $(abspath venv_setup.bash)"
	@set -f -m; args=(); for word in $(LAUNCH_ARGS); do word=$${word//\"/}; \
	  case "$$word" in *:=*) args+=("$$word");; *) args[$${#args[@]}-1]+=" $$word";; esac; done; \
	  $(ROS_ENV) ros2 launch bisegunet_ros segment.launch.py "$${args[@]}" & pid=$$!; set +m; \
	  trap 'kill -INT -$$pid 2>/dev/null' INT TERM; wait $$pid; status=$$?; \
	  while kill -0 $$pid 2>/dev/null; do wait $$pid; status=$$?; done; exit $$status

# The main job: a synthetic bag replayed live through the segmentation node (shipped model),
# evaluated against its labels; prints mIoU, fps, latency and the report's path.
DEMO_MODEL  ?= models/bisegunet_fast.onnx
DEMO_FRAMES ?= 60
DEMO_OUT    ?= build/demo
demo: setup
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(PY) -m bisegunet_training.make_bag $(DEMO_OUT)/bag --frames $(DEMO_FRAMES) --height 512 --width 1024 --fps 10
	$(PY) -m bisegunet_ros.evaluation.evaluate_bag $(DEMO_OUT)/bag --live --model $(DEMO_MODEL) --backend onnxruntime \
	  --out $(DEMO_OUT)/report

# BiSegUNet (fast, tiny, small; float, binarized) against torchvision's LR-ASPP and DeepLabV3
# (MobileNetV3), same training budget, 3 seeds, then size and interleaved ONNX Runtime latency:
# bench/pareto.md, .json, .png and README's pareto block (hours on 2 cores; rerun to resume; CI runs
# `--smoke` through test/test_pareto.py).
bench: setup
	nice -n 19 $(PY) -m bench.pareto

clean:
	rm -rf build bisegunet_ros/msg bisegunet_ros/*.so $(SETUP_STAMP) $(MSG_STAMP) $(PREFIX_STAMP) $(VENV)/.ros2-python-done
