"""Real RealSense `.db3` recordings without a camera: a pyrealsense2 software device (environment.md §4)."""
from dataclasses import dataclass, field


@dataclass
class Intrinsics:
    """Pinhole intrinsics in pixels; None means the frame centre / a focal length equal to the frame size."""
    fx: float | None = None
    fy: float | None = None
    ppx: float | None = None
    ppy: float | None = None
    brown_conrady: list[float] = field(default_factory=list)  # 5 coefficients, or none (no distortion)


def record_realsense(path, frames, fps=30, start_ms=5000.0, intrinsics=Intrinsics()):
    """Record u8[T,H,W,3] RGB frames to `path` (.db3), frame i stamped `start_ms + i * 1000 / fps`."""
    import pyrealsense2 as rs

    h, w = frames.shape[1:3]
    device = rs.software_device()
    sensor = device.add_sensor("RGB Camera")
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = w, h, fps, 3, rs.format.rgb8
    intr = rs.intrinsics()
    intr.width, intr.height = w, h
    intr.fx, intr.fy = intrinsics.fx or w, intrinsics.fy or h
    intr.ppx, intr.ppy = intrinsics.ppx or w / 2, intrinsics.ppy or h / 2
    intr.model = rs.distortion.brown_conrady if intrinsics.brown_conrady else rs.distortion.none
    intr.coeffs = list(intrinsics.brown_conrady) or [0.0] * 5
    stream.intrinsics = intr
    profile = sensor.add_video_stream(stream).as_video_stream_profile()
    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(rs.frame_queue(100))
    for i, img in enumerate(frames):
        frame = rs.software_video_frame()
        frame.pixels, frame.bpp, frame.stride = img, 3, w * 3
        frame.timestamp, frame.domain = start_ms + i * 1000 / fps, rs.timestamp_domain.system_time
        frame.frame_number, frame.profile = i, profile
        sensor.on_video_frame(frame)
    sensor.stop()
    sensor.close()
    recorder.pause()
    del recorder  # the file is finalised here
    return path
