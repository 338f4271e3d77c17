"""wav_ros: the World-Value-Action model (arXiv 2604.14732) on a bimanual ROS 2 robot.

The ML core (``model``, ``planning``, ``sim``, ``data``, ``training``, ``evaluation``) imports
no rclpy so it trains without ROS; only ``wav_ros.nodes`` and the command-line entry points do.
"""

__version__ = "0.1.0"
