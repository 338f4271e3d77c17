"""Validate ROS package manifests the way colcon/rosdep read them (catkin_pkg, format 3).

ament_xmllint's schema check needs the network for the XSD; catkin_pkg's parser checks the
same structure offline and also rejects missing maintainers, licenses or build types.
"""

from __future__ import annotations

import sys

from catkin_pkg.package import InvalidPackage, parse_package


def main(paths: list[str]) -> int:
    failures = 0
    for path in paths:
        try:
            package = parse_package(path)
            package.validate()
            if package.package_format != 3:
                raise InvalidPackage(f"format {package.package_format}, expected 3", path)
            if not package.get_build_type():
                raise InvalidPackage("no <build_type> export", path)
        except InvalidPackage as error:
            print(f"{path}: {error}")
            failures += 1
        else:
            print(f"{path}: ok ({package.name} {package.version}, {package.get_build_type()})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
