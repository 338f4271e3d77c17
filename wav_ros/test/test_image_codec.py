"""sensor_msgs/Image ⇄ numpy without cv_bridge: layouts, padding and refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 wheels) not installed")

from sensor_msgs.msg import Image
from std_msgs.msg import Header

from wav_ros.nodes.image_codec import (
    SUPPORTED_ENCODINGS,
    array_to_image,
    image_to_array,
    validate_image,
)


def rgb(height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def raw_image(encoding: str, height: int, width: int, step: int, data: bytes) -> Image:
    message = Image(height=height, width=width, encoding=encoding, step=step)
    message.data = data
    return message


def test_rgb8_bytes_are_row_major_rgb():
    pixels = rgb()
    message = array_to_image(pixels, "rgb8")
    assert (message.height, message.width, message.step) == (5, 7, 21)
    assert bytes(message.data) == pixels.tobytes()
    assert np.array_equal(image_to_array(message), pixels)


def test_bgr8_stores_blue_first_and_reads_back_as_rgb():
    pixels = rgb()
    message = array_to_image(pixels, "bgr8")
    stored = np.frombuffer(bytes(message.data), np.uint8).reshape(5, 7, 3)
    assert np.array_equal(stored, pixels[..., ::-1])
    assert np.array_equal(image_to_array(message), pixels)


def test_a_hand_built_bgr8_pixel_decodes_to_rgb():
    message = raw_image("bgr8", 1, 1, 3, bytes([10, 20, 30]))  # B, G, R
    assert image_to_array(message).tolist() == [[[30, 20, 10]]]


def test_mono8_is_replicated_into_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    message = array_to_image(gray, "mono8")
    assert (message.step, len(message.data)) == (4, 12)
    decoded = image_to_array(message)
    assert decoded.shape == (3, 4, 3)
    for channel in range(3):
        assert np.array_equal(decoded[..., channel], gray)
    assert np.array_equal(image_to_array(array_to_image(gray[..., None], "mono8")), decoded)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_row_padding_is_dropped(encoding):
    channels = SUPPORTED_ENCODINGS[encoding]
    height, width, pad = 3, 5, 4
    step = width * channels + pad
    rows = np.random.default_rng(1).integers(0, 256, (height, step), dtype=np.uint8)
    rows[:, width * channels :] = 255  # padding must not leak into the pixels
    message = raw_image(encoding, height, width, step, rows.tobytes())
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    expected = {
        "rgb8": pixels,
        "bgr8": pixels[..., ::-1],
        "mono8": np.repeat(pixels, 3, axis=2),
    }[encoding]
    assert np.array_equal(image_to_array(message), expected)


def test_the_array_never_aliases_the_message():
    message = array_to_image(rgb(), "rgb8")
    decoded = image_to_array(message)
    decoded[...] = 0
    assert any(bytes(message.data))


def test_header_is_carried():
    header = Header(frame_id="cam_high")
    header.stamp.sec = 12
    message = array_to_image(rgb(), header=header)
    assert message.header == header


@pytest.mark.parametrize("encoding", ["16UC1", "rgba8", "bayer_rggb8", "32FC1", ""])
def test_unsupported_encodings_are_refused_naming_encoding_and_source(encoding):
    message = raw_image(encoding, 2, 2, 8, bytes(16))
    with pytest.raises(
        ValueError, match=rf"'/cam_high/image_raw'.*unsupported encoding '{encoding}'"
    ):
        image_to_array(message, source="/cam_high/image_raw")
    with pytest.raises(ValueError, match="unsupported encoding"):
        validate_image(message)


@pytest.mark.parametrize(
    ("height", "width", "step", "size", "match"),
    [
        (2, 4, 11, 22, "step 11 is shorter than a row"),
        (2, 4, 12, 23, "23 data bytes, expected step × height = 12 × 2 = 24"),
        (2, 4, 12, 25, "25 data bytes"),
        (0, 4, 12, 0, "empty"),
        (2, 0, 0, 0, "empty"),
    ],
)
def test_inconsistent_sizes_are_refused(height, width, step, size, match):
    message = raw_image("rgb8", height, width, step, bytes(size))
    with pytest.raises(ValueError, match=match):
        image_to_array(message, source="cam_left_wrist")


def test_validate_returns_channels_without_decoding():
    assert validate_image(array_to_image(rgb(), "bgr8")) == 3
    assert validate_image(array_to_image(np.zeros((2, 2), np.uint8), "mono8")) == 1


@pytest.mark.parametrize(
    ("pixels", "encoding", "error", "match"),
    [
        (np.zeros((2, 2, 3), np.float32), "rgb8", TypeError, "uint8"),
        (np.zeros((2, 2), np.uint8), "rgb8", ValueError, r"\(H, W, 3\)"),
        (np.zeros((2, 2, 4), np.uint8), "bgr8", ValueError, r"\(H, W, 3\)"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", ValueError, "mono8 needs"),
        (np.zeros((0, 2, 3), np.uint8), "rgb8", ValueError, "empty"),
        (np.zeros((2, 2, 3), np.uint8), "16UC1", ValueError, "unsupported encoding '16UC1'"),
        ([[[0, 0, 0]]], "rgb8", TypeError, "numpy array"),
    ],
)
def test_array_to_image_refuses_what_it_cannot_encode(pixels, encoding, error, match):
    with pytest.raises(error, match=match):
        array_to_image(pixels, encoding)


def test_non_contiguous_arrays_are_encoded_by_value():
    wide = rgb(4, 10)
    view = wide[:, ::2]  # strided view
    assert np.array_equal(image_to_array(array_to_image(view)), view)
