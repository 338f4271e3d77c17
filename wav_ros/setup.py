"""ament_python setup of wav_ros: console scripts and the launch/config/rviz data files."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "wav_ros"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE_NAME}/rviz", glob("rviz/*.rviz")),
    ],
    package_data={PACKAGE_NAME: ["checkpoints/*/*"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="wav_ros maintainers",
    maintainer_email="wav-ros@example.com",
    description="World-Value-Action latent trajectory planning for a bimanual robot.",
    license="Apache-2.0",
    extras_require={"test": ["pytest", "hypothesis"]},
    entry_points={
        "console_scripts": [
            "bringup = wav_ros.nodes.bringup:main",
            "sim_bridge = wav_ros.nodes.sim_bridge:main",
            "camera_sync = wav_ros.nodes.camera_sync:main",
            "world_model = wav_ros.nodes.world_model:main",
            "value = wav_ros.nodes.value:main",
            "latent_planner = wav_ros.nodes.latent_planner:main",
            "action_executor = wav_ros.nodes.action_executor:main",
            "wav = wav_ros.nodes.cli:main",
        ],
    },
)
