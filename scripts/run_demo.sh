#!/usr/bin/env bash
# The project's main job (README: `make demo`): set up or reuse the environment, then run the
# embedded default — the simulated bimanual robot and the shipped tiny checkpoint, the whole
# node graph in one process — for one language-instructed episode, and print its report.
# Extra arguments go to `bringup` (see `bringup --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup_env.sh
# shellcheck disable=SC1091
source scripts/activate.sh
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((1 + RANDOM % 100))}"
mkdir -p outputs
exec bringup --run-task --report outputs/demo_report.json "$@"
