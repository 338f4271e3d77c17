"""QoS profiles of the graph, named by purpose (ros2/demos conventions)."""

from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data

#: Status-like topics: the last message reaches late subscribers (TRANSIENT_LOCAL, depth 1).
LATCHED = QoSProfile(
    depth=1,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)
#: Camera images and joint states: best effort, keep the newest.
SENSOR_DATA = qos_profile_sensor_data
