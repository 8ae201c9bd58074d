"""RealSense colour camera node (pyrealsense2), on realsense-ros's topic names, for hosts without realsense-ros.

Publishes `sensor_msgs/Image` on `image_topic` (default `/camera/camera/color/image_raw`, like
realsense2_camera >= 4.55) and `sensor_msgs/CameraInfo` on `camera_info_topic`
(`/camera/camera/color/camera_info`), intrinsics from the stream profile (plumb_bob, or equidistant for
Kannala-Brandt lenses, as realsense-ros does). The source is a connected device (`serial_no`, `width`,
`height`, `fps`) or, with `playback_file`, a RealSense recording (`.db3` from the RealSense viewer or
`rs.recorder`), read frame by frame without drops (playback not real-time) and optionally paced at the
recorded rate (`realtime`). Stamps are the frames' own timestamps (`stamp_source: frame`: host time for
system/global time domains, the recording's times on playback) or the time of publishing (`now`).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..msgs import CameraInfo, Header, Image, Time
from ..transport.base import DEFAULT_QOS, SENSOR_DATA_QOS, Transport
from .params import declare_params

PLAYBACK_QUEUE = 256  # frames read ahead from a recording
ENCODINGS = {"rgb8": "rgb8", "bgr8": "bgr8", "rgba8": "rgba8", "bgra8": "bgra8", "y8": "mono8"}  # rs.format -> ROS


@dataclass
class CameraParams:
    playback_file: str = field(default="", metadata={"help": "RealSense recording (.db3) to play; '' = device"})
    serial_no: str = field(default="", metadata={"help": "device serial number ('' = the first device)"})
    width: int = field(default=640, metadata={"help": "colour stream width (device)"})
    height: int = field(default=480, metadata={"help": "colour stream height (device)"})
    fps: int = field(default=30, metadata={"help": "colour stream rate (device)"})
    color_format: str = field(default="rgb8", metadata={"help": "rgb8 | bgr8 | rgba8 | bgra8 | y8 (device)"})
    image_topic: str = field(default="/camera/camera/color/image_raw", metadata={"help": "Image topic"})
    camera_info_topic: str = field(default="/camera/camera/color/camera_info", metadata={"help": "CameraInfo topic"})
    frame_id: str = field(default="camera_color_optical_frame", metadata={"help": "header frame_id"})
    stamp_source: str = field(default="frame", metadata={"help": "frame (the frames' timestamps) | now"})
    realtime: bool = field(default=True, metadata={"help": "playback: pace frames at the recorded rate"})
    loop: bool = field(default=False, metadata={"help": "playback: start again at the end"})

    def validate(self) -> None:
        if self.playback_file and not os.path.isfile(self.playback_file):
            raise UserError(f"parameter playback_file: {self.playback_file} does not exist")
        if self.playback_file and not self.playback_file.endswith(".db3"):
            raise UserError("parameter playback_file must be a RealSense .db3 recording")
        if self.color_format not in ENCODINGS:
            raise UserError(f"parameter color_format must be one of {', '.join(ENCODINGS)}, got '{self.color_format}'")
        if self.stamp_source not in ("frame", "now"):
            raise UserError(f"parameter stamp_source must be frame or now, got '{self.stamp_source}'")
        if min(self.width, self.height, self.fps) < 1:
            raise UserError("parameters width, height and fps must be >= 1")


class CameraNode:
    def __init__(self, transport: Transport):
        import pyrealsense2 as rs

        self.rs = rs
        self.transport = transport
        self.params = p = declare_params(transport, CameraParams)
        self.image_pub = transport.create_publisher(Image, p.image_topic, SENSOR_DATA_QOS)
        self.info_pub = transport.create_publisher(CameraInfo, p.camera_info_topic, DEFAULT_QOS)
        self.published = 0
        self._stop = threading.Event()
        self.pipeline = self.playback = None
        self._sensors = []
        self.camera_info = self._start()
        self.finished = threading.Event()  # set when a recording has been played to its end
        self._thread = threading.Thread(target=self._run, name=f"{transport.name}-frames", daemon=True)
        self._thread.start()

    def _start(self) -> CameraInfo:
        rs, p = self.rs, self.params
        try:
            profile = self._open_playback() if p.playback_file else self._open_device()
        except RuntimeError as exc:
            source = p.playback_file or f"RealSense device {p.serial_no or '(any)'}"
            raise UserError(f"cannot start the colour stream from {source}: {exc}") from None
        info = camera_info_from_intrinsics(profile.get_intrinsics(), rs)
        info.header.frame_id = p.frame_id
        self.transport.log("info", f"publishing {p.image_topic} from {p.playback_file or 'device'} "
                                   f"({info.width}x{info.height}, {profile.fps()} fps)")
        return info

    def _open_device(self):
        rs, p = self.rs, self.params
        serials = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
        if not serials or (p.serial_no and p.serial_no not in serials):
            raise RuntimeError(f"no such device connected (found: {', '.join(serials) or 'none'}); "
                               "check the USB 3 cable, or set playback_file to play a recording")
        config = rs.config()
        if p.serial_no:
            config.enable_device(p.serial_no)
        config.enable_stream(rs.stream.color, p.width, p.height, getattr(rs.format, p.color_format), p.fps)
        self.pipeline = rs.pipeline()
        profile = self.pipeline.start(config)
        self._next_frame = lambda: _color_frame(*self.pipeline.try_wait_for_frames(1000))
        return profile.get_stream(rs.stream.color).as_video_stream_profile()

    def _open_playback(self):
        """Sensor-level playback, not real-time: every recorded frame, in order (environment.md §4; the
        pipeline-level recipe delivered only the last frame of burst-written recordings here)."""
        rs = self.rs
        device = rs.context().load_device(self.params.playback_file)
        self.playback = device.as_playback()
        self.playback.set_real_time(False)
        self.playback.pause()
        queue = rs.frame_queue(PLAYBACK_QUEUE, keep_frames=True)
        for sensor in device.query_sensors():
            color = [s for s in sensor.get_stream_profiles() if s.stream_type() == rs.stream.color]
            if color:
                sensor.open(color[0])
                sensor.start(queue)
                self._sensors.append(sensor)
                break
        else:
            raise RuntimeError("the recording has no colour stream")
        self.playback.resume()
        self._next_frame = lambda: _color_frame(*queue.try_wait_for_frame(1000))
        return color[0].as_video_stream_profile()

    def _run(self) -> None:
        previous_ms = None
        try:
            while not self._stop.is_set():
                color = self._next_frame()
                if color is None:
                    if self.params.playback_file and self.playback.current_status() == self.rs.playback_status.stopped:
                        if not self.params.loop:
                            break  # end of the recording
                        self.playback.seek(datetime.timedelta(0))
                        self.playback.resume()
                    continue
                frame_ms = color.get_timestamp()
                if self.params.playback_file and self.params.realtime and previous_ms is not None:
                    time.sleep(min(max(0.0, (frame_ms - previous_ms) / 1000), 1.0))
                previous_ms = frame_ms
                self._publish(color)
        finally:
            self.finished.set()

    def _publish(self, color) -> None:
        rs = self.rs
        host_clock = color.get_frame_timestamp_domain() in (rs.timestamp_domain.system_time,
                                                            rs.timestamp_domain.global_time)
        if self.params.stamp_source == "frame" and host_clock:
            stamp_ns = round(color.get_timestamp() * 1e6)
        else:
            stamp_ns = self.transport.now_ns()
        header = Header(stamp=Time.from_ns(stamp_ns), frame_id=self.params.frame_id)
        encoding = ENCODINGS.get(str(color.get_profile().format()).split(".")[-1])
        if encoding is None:
            self.transport.log("error", f"unsupported RealSense colour format {color.get_profile().format()}")
            self._stop.set()
            return
        pixels = np.asanyarray(color.get_data())
        self.image_pub.publish(Image(header=header, height=color.get_height(), width=color.get_width(),
                                     encoding=encoding, is_bigendian=0, step=color.get_stride_in_bytes(),
                                     data=pixels.tobytes()))
        self.info_pub.publish(dataclasses.replace(self.camera_info, header=header))
        self.published += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.pipeline is not None:
            self.pipeline.stop()
        for sensor in self._sensors:
            sensor.stop()
            sensor.close()


def _color_frame(ok: bool, frame):
    """The colour video frame of a pipeline frameset or a sensor frame, or None."""
    if not ok:
        return None
    if frame.is_frameset():
        frame = frame.as_frameset().get_color_frame()
    return frame.as_video_frame() if frame else None


def camera_info_from_intrinsics(intr, rs) -> CameraInfo:
    """sensor_msgs/CameraInfo from `rs.intrinsics`, with realsense-ros's distortion model mapping."""
    fx, fy, cx, cy = intr.fx, intr.fy, intr.ppx, intr.ppy
    equidistant = intr.model == rs.distortion.kannala_brandt4
    coeffs = list(intr.coeffs)[:4] if equidistant else list(intr.coeffs)[:5]
    return CameraInfo(
        height=intr.height, width=intr.width, distortion_model="equidistant" if equidistant else "plumb_bob",
        d=np.asarray(coeffs, np.float64),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64),
        r=np.eye(3).reshape(-1),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64))
