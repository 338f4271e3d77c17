"""sensor_msgs/Image ⇄ numpy for the 8-bit encodings the model reads, without cv_bridge.

cv_bridge is not installable here, and PyPI's `cv-bridge` is a ROS 1 copy that corrupts 16-bit
images, so the few encodings the cameras use are converted with numpy. Everything else is
refused with a ValueError naming the encoding and the source: a depth or Bayer image decoded
as RGB would feed the model garbage without any error. Imports sensor_msgs only (no rclpy).
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

#: Encodings understood here → channels per pixel (8 bits each).
SUPPORTED_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def _describe(source: str | None) -> str:
    return f"image from {source!r}" if source else "image"


def validate_image(message: Image, source: str | None = None) -> int:
    """Check encoding and sizes without touching the pixels; returns the channel count.

    `source` (a topic or camera name) only makes the error message say where the image came
    from. Refuses unsupported encodings, empty images, a row step shorter than a row and a
    data size other than step × height.
    """
    what = _describe(source)
    channels = SUPPORTED_ENCODINGS.get(message.encoding)
    if channels is None:
        raise ValueError(
            f"{what} has unsupported encoding {message.encoding!r}; "
            f"supported: {sorted(SUPPORTED_ENCODINGS)}"
        )
    if message.height == 0 or message.width == 0:
        raise ValueError(f"{what} ({message.encoding}) is empty: {message.height}x{message.width}")
    row_bytes = message.width * channels
    if message.step < row_bytes:
        raise ValueError(
            f"{what} ({message.encoding}): step {message.step} is shorter than a row of "
            f"{message.width} pixels ({row_bytes} bytes)"
        )
    if len(message.data) != message.step * message.height:
        raise ValueError(
            f"{what} ({message.encoding}): {len(message.data)} data bytes, expected "
            f"step × height = {message.step} × {message.height} = {message.step * message.height}"
        )
    return channels


def image_to_array(message: Image, source: str | None = None) -> np.ndarray:
    """Image → new uint8 array (H, W, 3) in RGB order.

    bgr8 is reordered to RGB; mono8 is replicated into three equal channels so every camera
    yields the same shape for the model. Row padding (step > width × channels) is dropped.
    The result never shares memory with the message.
    """
    channels = validate_image(message, source)
    rows = np.frombuffer(message.data, dtype=np.uint8).reshape(message.height, message.step)
    pixels = rows[:, : message.width * channels].reshape(message.height, message.width, channels)
    if message.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    if message.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    return pixels.copy()


def array_to_image(
    pixels: np.ndarray, encoding: str = "rgb8", header: Header | None = None
) -> Image:
    """uint8 array → Image (no row padding), the inverse of `image_to_array`.

    rgb8 and bgr8 take an (H, W, 3) array in RGB order (bgr8 reorders it); mono8 takes an
    (H, W) or (H, W, 1) gray array: a colour array is refused rather than silently converted.
    """
    if encoding not in SUPPORTED_ENCODINGS:
        raise ValueError(
            f"unsupported encoding {encoding!r}; supported: {sorted(SUPPORTED_ENCODINGS)}"
        )
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"pixels must be a numpy array, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8 for {encoding}, got {pixels.dtype}")
    if encoding == "mono8":
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        if pixels.ndim != 2:
            raise ValueError(f"mono8 needs an (H, W) or (H, W, 1) array, got {pixels.shape}")
    elif pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"{encoding} needs an (H, W, 3) RGB array, got {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"cannot encode an empty image of shape {pixels.shape}")
    if encoding == "bgr8":
        pixels = pixels[..., ::-1]
    height, width = pixels.shape[:2]
    channels = SUPPORTED_ENCODINGS[encoding]
    message = Image(
        header=header if header is not None else Header(),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
    )
    # An array.array skips the generated setter's per-element check (≈10 ms for 224² RGB).
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels))
    message.data = data
    return message
