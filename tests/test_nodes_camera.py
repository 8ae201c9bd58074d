"""Camera node: a pyrealsense2 software-device recording (.db3) played back through the node."""
import time

import cv2
import numpy as np
import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.msgs import CameraInfo, Image
from diffusion_reward.nodes.camera import CameraNode
from diffusion_reward.data.frames import image_to_rgb
from diffusion_reward.transport import QoS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport
from realsense_recording import Intrinsics, record_realsense

rs = pytest.importorskip("pyrealsense2")  # a requirement; import fails only without libusb
W, H, N = 32, 24, 12
START_MS = 1_700_000_123_000.0
INTRINSICS = Intrinsics(fx=30.5, fy=31.5, ppx=15.2, ppy=11.7, brown_conrady=[0.1, -0.2, 0.001, 0.002, 0.03])


def test_plays_a_recording_with_intrinsics_and_frame_stamps(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
    path = tmp_path / "rec.db3"
    record_realsense(path, frames, start_ms=START_MS, intrinsics=INTRINSICS)
    bus, node, images, infos = _play({"playback_file": str(path)})
    assert node.finished.wait(30)
    node.close()
    bus.spin_until_idle()
    assert len(images) == N == len(infos)
    np.testing.assert_array_equal(np.stack([image_to_rgb(m) for m in images]), frames)
    assert images[0].encoding == "rgb8" and images[0].header.frame_id == "camera_color_optical_frame"
    stamps_ms = np.array([m.header.stamp.to_ns() for m in images]) / 1e6
    np.testing.assert_allclose(stamps_ms, START_MS + np.arange(N) * 1000 / 30, atol=0.01)
    assert [i.header.stamp for i in infos] == [m.header.stamp for m in images]
    info = infos[0]
    assert (info.width, info.height, info.distortion_model) == (W, H, "plumb_bob")
    np.testing.assert_allclose(info.k, [30.5, 0, 15.2, 0, 31.5, 11.7, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(info.p, [30.5, 0, 15.2, 0, 0, 31.5, 11.7, 0, 0, 0, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(info.d, [0.1, -0.2, 0.001, 0.002, 0.03], rtol=1e-6)


def _play(params, topic_depth=100):
    bus = InProcessBus()
    listener = InProcessTransport("listener", bus)
    images, infos = [], []
    listener.create_subscription(Image, "/camera/camera/color/image_raw", images.append, QoS(False, topic_depth))
    listener.create_subscription(CameraInfo, "/camera/camera/color/camera_info", infos.append, QoS(True, topic_depth))
    node = CameraNode(InProcessTransport("camera", bus, params={"realtime": False, **params}))
    return bus, node, images, infos


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_plays_video_files_and_frame_folders(tmp_path, kind):
    frames = np.random.default_rng(1).integers(0, 256, size=(5, H, W, 3), dtype=np.uint8)
    if kind == "video":
        path = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 15, (W, H))  # lossless
        for frame in frames:
            writer.write(frame[..., ::-1])
        writer.release()
    else:
        path = tmp_path / "episode"
        path.mkdir()
        for i, frame in enumerate(frames):  # numeric order: 10.png after 9.png
            cv2.imwrite(str(path / f"{i * 5}.png"), frame[..., ::-1])
    bus, node, images, infos = _play({"playback_file": str(path), "fps": 15, "loop": True, "realtime": True},
                                     topic_depth=1000)  # paced: the loop cannot outrun the queue
    deadline = time.monotonic() + 30
    while node.published < 2 * len(frames) and time.monotonic() < deadline:
        time.sleep(0.01)
    node.close()
    bus.spin_until_idle()
    assert len(images) >= 2 * len(frames)
    played = np.stack([image_to_rgb(m) for m in images[:2 * len(frames)]])
    np.testing.assert_array_equal(played, np.concatenate([frames, frames]))  # looped
    stamps = np.array([m.header.stamp.to_ns() for m in images])
    np.testing.assert_allclose(np.diff(stamps), 1e9 / 15, atol=2)  # the recorded rate, also across the loop
    assert (infos[0].width, infos[0].height, float(infos[0].k[0])) == (W, H, 0.0)  # uncalibrated


def test_unreadable_video_is_one_clear_error(tmp_path):
    path = tmp_path / "not_a_video.mp4"
    path.write_bytes(b"nope")
    with pytest.raises(UserError, match="cannot open .* as a video"):
        CameraNode(InProcessTransport("camera", InProcessBus(), params={"playback_file": str(path)}))


@pytest.mark.parametrize("params,match", [
    ({"playback_file": "/nonexistent.db3"}, "does not exist"),
    ({"fps": 0}, "fps must be >= 1"),
    ({"color_format": "yuyv"}, "color_format"),
    ({"stamp_source": "sensor"}, "stamp_source"),
])
def test_parameter_validation(params, match):
    with pytest.raises(UserError, match=match):
        CameraNode(InProcessTransport("camera", InProcessBus(), params=params))


def test_no_device_is_one_clear_error():
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense device is connected")
    with pytest.raises(UserError, match="cannot start the colour stream from RealSense device"):
        CameraNode(InProcessTransport("camera", InProcessBus()))
