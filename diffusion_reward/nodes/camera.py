"""Camera node on realsense-ros's topic names: a RealSense device, or a recording / video / frame folder.

Publishes `sensor_msgs/Image` on `image_topic` (default `/camera/camera/color/image_raw`, like
realsense2_camera >= 4.55) and `sensor_msgs/CameraInfo` on `camera_info_topic`
(`/camera/camera/color/camera_info`), for hosts without realsense-ros and as a camera stand-in.

Sources (`playback_file`):
- '' : a connected RealSense (pyrealsense2; `serial_no`, `width`, `height`, `fps`, `color_format`),
  intrinsics from the stream profile (plumb_bob, or equidistant for Kannala-Brandt lenses, as
  realsense-ros does);
- a RealSense recording (`.db3`): played at sensor level, not real-time, so no frame is dropped;
  the recorded intrinsics and frame times;
- a video file (anything OpenCV reads: .mp4, .avi, ...) or a folder of numbered PNG frames (the authors'
  `<episode>/<i>.png` layout): rgb8 frames at the file's rate (folders: `fps`), CameraInfo uncalibrated
  (all-zero K, as ROS marks it).
`realtime` paces playback at the recorded rate; `loop` starts again at the end. Stamps
(`stamp_source: frame`) are the frames' own times: host time for a device's system/global time domain,
the recording's times for .db3, and start time + i / fps for videos and folders; `now` stamps on publish.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..msgs import CameraInfo, Header, Image, Time
from ..transport.base import DEFAULT_QOS, SENSOR_DATA_QOS, Transport
from .params import declare_params

PLAYBACK_QUEUE = 256  # frames read ahead from a RealSense recording
ENCODINGS = {"rgb8": "rgb8", "bgr8": "bgr8", "rgba8": "rgba8", "bgra8": "bgra8", "y8": "mono8"}  # rs.format -> ROS


@dataclass
class CameraParams:
    playback_file: str = field(default="", metadata={
        "help": "'' = RealSense device; a .db3 RealSense recording, a video file or a folder of PNG frames"})
    serial_no: str = field(default="", metadata={"help": "device serial number ('' = the first device)"})
    width: int = field(default=640, metadata={"help": "colour stream width (device)"})
    height: int = field(default=480, metadata={"help": "colour stream height (device)"})
    fps: int = field(default=30, metadata={"help": "colour stream rate (device; PNG folders)"})
    color_format: str = field(default="rgb8", metadata={"help": "rgb8 | bgr8 | rgba8 | bgra8 | y8 (device)"})
    image_topic: str = field(default="/camera/camera/color/image_raw", metadata={"help": "Image topic"})
    camera_info_topic: str = field(default="/camera/camera/color/camera_info", metadata={"help": "CameraInfo topic"})
    frame_id: str = field(default="camera_color_optical_frame", metadata={"help": "header frame_id"})
    stamp_source: str = field(default="frame", metadata={"help": "frame (the frames' own times) | now"})
    realtime: bool = field(default=True, metadata={"help": "playback: pace frames at the recorded rate"})
    loop: bool = field(default=False, metadata={"help": "playback: start again at the end"})

    def validate(self) -> None:
        if self.playback_file and not os.path.exists(self.playback_file):
            raise UserError(f"parameter playback_file: {self.playback_file} does not exist")
        if self.color_format not in ENCODINGS:
            raise UserError(f"parameter color_format must be one of {', '.join(ENCODINGS)}, got '{self.color_format}'")
        if self.stamp_source not in ("frame", "now"):
            raise UserError(f"parameter stamp_source must be frame or now, got '{self.stamp_source}'")
        if min(self.width, self.height, self.fps) < 1:
            raise UserError("parameters width, height and fps must be >= 1")


@dataclass
class Frame:
    pixels: np.ndarray  # u8[H,W,C] (or [H,W] for mono8)
    encoding: str
    time_ns: int | None  # the source's own time, None when it has none


class CameraNode:
    def __init__(self, transport: Transport):
        self.transport = transport
        self.params = p = declare_params(transport, CameraParams)
        self.image_pub = transport.create_publisher(Image, p.image_topic, SENSOR_DATA_QOS)
        self.info_pub = transport.create_publisher(CameraInfo, p.camera_info_topic, DEFAULT_QOS)
        self.source = open_source(p, start_ns=transport.now_ns())
        self.camera_info = dataclasses.replace(self.source.camera_info, header=Header(frame_id=p.frame_id))
        self.published = 0
        self.finished = threading.Event()  # set when playback reached its end (never for a device)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{transport.name}-frames", daemon=True)
        self._thread.start()
        transport.log("info", f"publishing {p.image_topic} from {p.playback_file or 'RealSense device'} "
                              f"({self.camera_info.width}x{self.camera_info.height})")

    def _run(self) -> None:
        previous_ns = None
        try:
            while not self._stop.is_set():
                frame = self.source.next_frame()
                if frame is None:
                    if self.source.ended():
                        if not self.params.loop:
                            break
                        self.source.rewind()
                        previous_ns = None
                    continue
                if self.params.playback_file and self.params.realtime and None not in (previous_ns, frame.time_ns):
                    time.sleep(min(max(0.0, (frame.time_ns - previous_ns) / 1e9), 1.0))
                previous_ns = frame.time_ns
                self._publish(frame)
        finally:
            self.finished.set()

    def _publish(self, frame: Frame) -> None:
        use_frame_time = self.params.stamp_source == "frame" and frame.time_ns is not None
        header = Header(stamp=Time.from_ns(frame.time_ns if use_frame_time else self.transport.now_ns()),
                        frame_id=self.params.frame_id)
        pixels = np.ascontiguousarray(frame.pixels)
        h, w = pixels.shape[:2]
        self.image_pub.publish(Image(header=header, height=h, width=w, encoding=frame.encoding, is_bigendian=0,
                                     step=pixels[0].nbytes, data=pixels.tobytes()))
        self.info_pub.publish(dataclasses.replace(self.camera_info, header=header))
        self.published += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.source.close()


def open_source(p: CameraParams, start_ns: int):
    path = p.playback_file
    if not path or path.endswith(".db3"):
        return RealSenseSource(p)
    if os.path.isdir(path):
        return FolderSource(Path(path), p.fps, start_ns)
    return VideoSource(path, start_ns)


class RealSenseSource:
    """A device (pipeline) or a .db3 recording (sensor-level playback, not real-time)."""

    def __init__(self, p: CameraParams):
        import pyrealsense2 as rs

        self.rs, self.p = rs, p
        self.pipeline = self.playback = None
        self.sensors = []
        try:
            profile = self._open_recording() if p.playback_file else self._open_device()
        except RuntimeError as exc:
            source = p.playback_file or f"RealSense device {p.serial_no or '(any)'}"
            raise UserError(f"cannot start the colour stream from {source}: {exc}") from None
        self.camera_info = camera_info_from_intrinsics(profile.get_intrinsics(), rs)

    def _open_device(self):
        rs, p = self.rs, self.p
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
        self._wait = lambda: self.pipeline.try_wait_for_frames(1000)
        return profile.get_stream(rs.stream.color).as_video_stream_profile()

    def _open_recording(self):
        """environment.md §4; the pipeline-level recipe delivered only the last frame of burst-written
        recordings here, the sensor-level path delivers every frame."""
        rs = self.rs
        device = rs.context().load_device(self.p.playback_file)
        self.playback = device.as_playback()
        self.playback.set_real_time(False)
        self.playback.pause()
        queue = rs.frame_queue(PLAYBACK_QUEUE, keep_frames=True)
        for sensor in device.query_sensors():
            color = [s for s in sensor.get_stream_profiles() if s.stream_type() == rs.stream.color]
            if color:
                sensor.open(color[0])
                sensor.start(queue)
                self.sensors.append(sensor)
                break
        else:
            raise RuntimeError("the recording has no colour stream")
        self.playback.resume()
        self._wait = lambda: queue.try_wait_for_frame(1000)
        return color[0].as_video_stream_profile()

    def next_frame(self) -> Frame | None:
        ok, frame = self._wait()
        if not ok:
            return None
        if frame.is_frameset():
            frame = frame.as_frameset().get_color_frame()
        if not frame:
            return None
        color = frame.as_video_frame()
        fmt = str(color.get_profile().format()).split(".")[-1]
        if fmt not in ENCODINGS:
            raise UserError(f"unsupported RealSense colour format {fmt}")
        host_time = color.get_frame_timestamp_domain() in (self.rs.timestamp_domain.system_time,
                                                           self.rs.timestamp_domain.global_time)
        return Frame(np.asanyarray(color.get_data()), ENCODINGS[fmt],
                     round(color.get_timestamp() * 1e6) if host_time else None)

    def ended(self) -> bool:
        # a playback reports `stopped` before its queue is drained: callers ask after a 1 s empty wait
        return self.playback is not None and self.playback.current_status() == self.rs.playback_status.stopped

    def rewind(self) -> None:
        self.playback.seek(datetime.timedelta(0))
        self.playback.resume()

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
        for sensor in self.sensors:
            sensor.stop()
            sensor.close()


class VideoSource:
    """A video file through OpenCV; frame i is stamped start + its position in the video."""

    def __init__(self, path: str, start_ns: int):
        self.path, self.start_ns = path, start_ns
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise UserError(f"cannot open {path} as a video (or give a .db3 RealSense recording / a frame folder)")
        w, h = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.camera_info = CameraInfo(width=w, height=h)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0
        self.index, self.done = 0, False

    def next_frame(self) -> Frame | None:
        ok, bgr = self.capture.read()
        if not ok:
            self.done = True
            return None
        frame = Frame(bgr, "bgr8", self.start_ns + round(self.index * 1e9 / self.fps))
        self.index += 1
        return frame

    def ended(self) -> bool:
        return self.done

    def rewind(self) -> None:
        self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.start_ns += round(self.index * 1e9 / self.fps)  # stamps keep increasing over loops
        self.index, self.done = 0, False

    def close(self) -> None:
        self.capture.release()


class FolderSource(VideoSource):
    """Numbered PNG frames (`0.png, 1.png, ...`, numeric order) at `fps`."""

    def __init__(self, folder: Path, fps: int, start_ns: int):
        from ..data.video_folder import read_png_frames

        self.frames = read_png_frames(folder)  # UserError when empty or unreadable
        self.start_ns, self.fps, self.index, self.done = start_ns, float(fps), 0, False
        self.camera_info = CameraInfo(width=self.frames.shape[2], height=self.frames.shape[1])

    def next_frame(self) -> Frame | None:
        if self.index >= len(self.frames):
            self.done = True
            return None
        rgb = self.frames[self.index]
        frame = Frame(rgb, "rgb8", self.start_ns + round(self.index * 1e9 / self.fps))
        self.index += 1
        return frame

    def rewind(self) -> None:
        self.start_ns += round(self.index * 1e9 / self.fps)
        self.index, self.done = 0, False

    def close(self) -> None:
        pass


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
