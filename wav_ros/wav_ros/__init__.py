"""wav_ros: the World-Value-Action model (arXiv 2604.14732) on a bimanual ROS 2 robot.

The ML core (``model``, ``planning``, ``sim``, ``data``, ``training``, ``evaluation``) imports
no rclpy so it trains without ROS; only ``wav_ros.nodes`` and the command-line entry points do.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The installed package's folder (its sources, checkpoints and config files).
PACKAGE_DIR = Path(__file__).resolve().parent
#: The tiny checkpoint shipped inside the package: what the embedded default loads.
SHIPPED_CHECKPOINT = PACKAGE_DIR / "checkpoints" / "wav_tiny"
