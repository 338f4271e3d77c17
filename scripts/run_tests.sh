#!/usr/bin/env bash
# The project's test command (README: `make test`; CI: .ci/run): set up or reuse the
# environment, lint, then run every test. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup_env.sh
# shellcheck disable=SC1091
source scripts/activate.sh

echo "[test] ruff"
ruff check .
echo "[test] package manifests (xmllint well-formedness + catkin_pkg format-3 validation)"
xmllint --noout wav_interfaces/package.xml wav_ros/package.xml
python scripts/check_manifests.py wav_interfaces/package.xml wav_ros/package.xml
echo "[test] pytest"
exec python -m pytest -p no:cacheprovider "$@"
