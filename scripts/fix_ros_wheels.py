"""Rewrite the build box's Python paths hard-coded in the ros-* wheels' exported CMake targets.

The PyPI ros-* wheels were built in a manylinux container whose interpreter lived under
/opt/python/cp311-cp311; their exported rosidl_generator_py targets point at its include dirs,
so any package that generates interfaces against them fails to configure. This points them at
this interpreter's headers and numpy's. Idempotent; only for the pip-wheel set-up (a full ROS
install does not need it).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_BOX_PREFIX = "/opt/python/cp311-cp311"


def rewrite_targets(share_dir: Path) -> int:
    """Replace the build box's Python and numpy include dirs in every CMake file; return count."""
    replacements = {
        f"{BUILD_BOX_PREFIX}/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
        f"{BUILD_BOX_PREFIX}/include/python3.11": sysconfig.get_paths()["include"],
    }
    rewritten = 0
    for cmake_file in share_dir.rglob("*.cmake"):
        text = cmake_file.read_text()
        if BUILD_BOX_PREFIX not in text:
            continue
        for old, new in replacements.items():
            text = text.replace(old, new)
        cmake_file.write_text(text)
        rewritten += 1
    return rewritten


def main() -> int:
    share_dir = Path(sys.prefix) / "share"
    if not share_dir.is_dir():
        print(f"fix_ros_wheels: {share_dir} does not exist; are the ros-* wheels installed?")
        return 1
    count = rewrite_targets(share_dir)
    print(f"fix_ros_wheels: rewrote {count} CMake file(s) under {share_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
