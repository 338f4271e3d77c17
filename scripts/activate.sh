# Source me (bash): `source scripts/activate.sh`. Activates the .venv and the colcon overlay so
# `import rclpy`, `from wav_interfaces.msg import ...` and the wav_ros executables work.
# Sets the local-only discovery this project's machines need.
_wav_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "${WAV_VENV:-$_wav_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup scripts are not `set -u` safe: relax it while sourcing.
_wav_had_u=0
[[ $- == *u* ]] && _wav_had_u=1 && set +u
# shellcheck disable=SC1091
source "$_wav_root/install/setup.bash"
((_wav_had_u)) && set -u
# The package's executables (what `ros2 run wav_ros <name>` would start), e.g. `wav`, `bringup`.
export PATH="$_wav_root/install/wav_ros/lib/wav_ros:$PATH"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Offscreen MuJoCo rendering on the CPU; set MUJOCO_GL=egl on a machine with a GPU.
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
unset _wav_root _wav_had_u
