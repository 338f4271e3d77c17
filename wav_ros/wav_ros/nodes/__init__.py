"""rclpy nodes of the WAV planning graph; the only modules that import rclpy."""
