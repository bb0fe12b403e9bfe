# Source after `make setup` to use the venv as a ROS 2 user expects, from any shell:
#   source venv_setup.bash    # then: ros2 run bisegunet_ros segment_node, ros2 launch bisegunet_ros segment.launch.py
# It activates .venv (its bin/ first on PATH: the executables' `#!/usr/bin/env python3` is the venv's Python),
# makes the venv the ament prefix that `ros2 run|launch|pkg` search (AMENT_PREFIX_PATH), keeps DDS on this
# machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and keeps ROS_DOMAIN_ID if set (to join a `make launch`,
# which prints its domain), else picks one of 1-100 and prints it. The vehicle's colcon install has its own
# install/setup.bash instead.
_bisegunet_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv"
if [ -f "$_bisegunet_venv/bin/activate" ]; then
  source "$_bisegunet_venv/bin/activate"
  export AMENT_PREFIX_PATH="$_bisegunet_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(shuf -i 1-100 -n 1)}"
  echo "bisegunet_ros venv: ROS_DOMAIN_ID=$ROS_DOMAIN_ID, DDS on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)"
else
  echo "venv_setup.bash: $_bisegunet_venv is missing: run \`make setup\` first" >&2
fi
unset _bisegunet_venv
