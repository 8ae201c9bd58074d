"""Image conversions against real ROS 2 message definitions (rosbags' Humble typestore, CDR round trip)."""
import dataclasses

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from diffusion_reward.errors import UserError
from diffusion_reward.data.frames import resize_frames
from diffusion_reward.msgs import CompressedImage, Image
from diffusion_reward.data.frames import Crop, ImageConversionError, image_to_rgb, rgb_to_image, to_model_frame

TS = get_typestore(Stores.ROS2_HUMBLE)
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _from_ros(ros_msg, cls):
    """Our dataclass from a deserialised ROS 2 message, field by field (as a transport does)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = getattr(ros_msg, f.name)
        if hasattr(value, "__msgtype__"):  # nested message
            sub_cls = type(getattr(cls(), f.name))
            value = _from_ros(value, sub_cls)
        elif f.name == "data" and isinstance(value, np.ndarray):
            value = value.tobytes()
        kwargs[f.name] = value
    return cls(**kwargs)


def _cdr_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: int = 0) -> Image:
    """Serialise a sensor_msgs/msg/Image with `pad` bytes of row padding to CDR and read it back."""
    RosImage = TS.types["sensor_msgs/msg/Image"]
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8)
    padded = np.concatenate([row, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    header = TS.types["std_msgs/msg/Header"](
        stamp=TS.types["builtin_interfaces/msg/Time"](sec=12, nanosec=345), frame_id="camera_color_optical_frame")
    msg = RosImage(header=header, height=h, width=w, encoding=encoding, is_bigendian=bigendian,
                   step=padded.shape[1], data=padded.reshape(-1))
    raw = TS.serialize_cdr(msg, RosImage.__msgtype__)
    return _from_ros(TS.deserialize_cdr(raw, RosImage.__msgtype__), Image)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding,make", [
    ("rgb8", lambda x: x),
    ("bgr8", lambda x: x[..., ::-1]),
    ("rgba8", lambda x: np.concatenate([x, np.full(x.shape[:2] + (1,), 9, np.uint8)], 2)),
    ("bgra8", lambda x: np.concatenate([x[..., ::-1], np.full(x.shape[:2] + (1,), 9, np.uint8)], 2)),
])
def test_colour_encodings_with_row_padding(encoding, make, pad):
    msg = _cdr_image(np.ascontiguousarray(make(RGB)), encoding, pad)
    assert msg.header.stamp.sec == 12 and msg.step == RGB.shape[1] * (4 if "a" in encoding else 3) + pad
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_mono8_and_16_bit_byte_orders():
    gray = RGB[..., 0]
    np.testing.assert_array_equal(image_to_rgb(_cdr_image(gray, "mono8", pad=1)), np.repeat(gray[..., None], 3, 2))
    wide = gray.astype(np.uint16) * 256 + 77  # high byte = the 8-bit value
    little = _cdr_image(np.ascontiguousarray(wide.astype("<u2")), "mono16", pad=2, bigendian=0)
    big = _cdr_image(np.ascontiguousarray(wide.astype(">u2")), "mono16", pad=2, bigendian=1)
    for msg in (little, big):
        np.testing.assert_array_equal(image_to_rgb(msg)[..., 1], gray)
    rgb16 = _cdr_image(np.ascontiguousarray((RGB.astype(np.uint16) * 256).astype(">u2")), "rgb16", bigendian=1)
    np.testing.assert_array_equal(image_to_rgb(rgb16), RGB)


@pytest.mark.parametrize("fmt,ext,exact", [("png", ".png", True), ("rgb8; jpeg compressed bgr8", ".jpg", False)])
def test_compressed_image_round_trip(fmt, ext, exact):
    frame = np.kron(RGB, np.ones((8, 8, 1), np.uint8))  # blocky, so jpeg stays close
    ok, buf = cv2.imencode(ext, frame[..., ::-1])
    RosCompressed = TS.types["sensor_msgs/msg/CompressedImage"]
    ros = RosCompressed(header=TS.types["std_msgs/msg/Header"](
        stamp=TS.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"), format=fmt,
        data=buf.reshape(-1))
    msg = _from_ros(TS.deserialize_cdr(TS.serialize_cdr(ros, RosCompressed.__msgtype__), RosCompressed.__msgtype__),
                    CompressedImage)
    out = image_to_rgb(msg)
    assert out.shape == frame.shape
    if exact:
        np.testing.assert_array_equal(out, frame)
    else:
        assert np.abs(out.astype(int) - frame).mean() < 12


def test_rgb_to_image_round_trips_through_cdr():
    for encoding in ("rgb8", "bgr8"):
        msg = rgb_to_image(RGB, stamp_ns=5_000_000_123, frame_id="cam", encoding=encoding)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.step) == (5, 123, 21)
        RosImage = TS.types["sensor_msgs/msg/Image"]
        ros = RosImage(header=TS.types["std_msgs/msg/Header"](
            stamp=TS.types["builtin_interfaces/msg/Time"](sec=5, nanosec=123), frame_id="cam"),
            height=msg.height, width=msg.width, encoding=msg.encoding, is_bigendian=0, step=msg.step,
            data=np.frombuffer(msg.data, np.uint8))
        back = _from_ros(TS.deserialize_cdr(TS.serialize_cdr(ros, RosImage.__msgtype__), RosImage.__msgtype__), Image)
        np.testing.assert_array_equal(image_to_rgb(back), RGB)


@pytest.mark.parametrize("msg,match", [
    (Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), "unsupported image encoding 'yuv422'"),
    (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty image"),
    (Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(12)), "step 5 is shorter"),
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(7)), "has 7 bytes"),
    (CompressedImage(format="jpeg", data=b"not a jpeg"), "cannot decode"),
    (CompressedImage(format="jpeg", data=b""), "cannot decode"),
])
def test_bad_images_raise_a_specific_error(msg, match):
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(msg)


def test_crop_specs_and_model_frame():
    frame = np.arange(48 * 64 * 3, dtype=np.uint32).astype(np.uint8).reshape(48, 64, 3)
    assert Crop.parse("center").apply(frame).shape == (48, 48, 3)
    np.testing.assert_array_equal(Crop.parse("center").apply(frame), frame[:, 8:56])
    np.testing.assert_array_equal(Crop.parse(" 4,2,10,20 ").apply(frame), frame[2:22, 4:14])
    assert Crop.parse("none").apply(frame).shape == frame.shape
    out = to_model_frame(frame, Crop.parse("center"), 16)
    np.testing.assert_array_equal(out, cv2.resize(frame[:, 8:56], (16, 16), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(out, resize_frames(frame[None], 16)[0])  # what offline scoring does
    roi = to_model_frame(frame, Crop.parse("4,2,20,10"), 8)
    np.testing.assert_array_equal(roi, cv2.resize(frame[2:12, 9:19], (8, 8), interpolation=cv2.INTER_AREA))
    squashed = to_model_frame(frame, Crop.parse("none"), 16)
    np.testing.assert_array_equal(squashed, cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA))
    with pytest.raises(ImageConversionError, match="does not fit"):
        Crop.parse("60,0,10,10").apply(frame)
    for bad in ("middle", "1,2,3", "1,2,0,4", "-1,0,2,2"):
        with pytest.raises(UserError, match="crop"):
            Crop.parse(bad)
