"""Video files (MP4: AV1 or H.264) through the ffmpeg binary imageio-ffmpeg ships, the one `evaluate --video`
already writes with: decoding frames at given times, and encoding frames the way LeRobot does.

- `VideoFrames(path, times, tolerance_s)`: the frames shown at `times` (seconds on the file's own clock), decoded
  as they are sliced in forward order (one ffmpeg process seeks to the first frame asked for and streams on), so
  an episode inside a long file (LeRobot v3.0 keeps many episodes per MP4) costs its own frames only. Each time
  gets the decoded frame whose timestamp is nearest, which must lie within `tolerance_s` (LeRobot's rule, default
  1e-4 s); frame timestamps come from ffmpeg's `showinfo` filter in microseconds (`settb=1/1000000`), with
  `-copyts` so they are the container's own. AV1 decodes with libdav1d, H.264 with ffmpeg's native decoder.
- `VideoEncoder(path, size, fps)`: raw RGB frames in, an MP4 out with LeRobot's encoder settings (libsvtav1,
  yuv420p, GOP 2, CRF 30, preset 12), or libaom-av1, or H.264 (libx264) when the binary has no AV1 encoder
  (`pick_encoder`). Frame n gets timestamp n / fps.
"""
from __future__ import annotations

import functools
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import UserError
from .episode import forward_slice

DEFAULT_TOLERANCE_S = 1e-4  # LeRobot's `tolerance_s`: a stored timestamp and its video frame may differ this much
SEEK_MARGIN_S = 0.05  # seek this far before the first time asked for; earlier frames are decoded and dropped
_SHOWINFO = re.compile(r"\bn:\s*\d+\s+pts:\s*(\S+)\s.*?\bs:(\d+)x(\d+)")
# encoder name -> (codec name in LeRobot's info.json, ffmpeg options); LeRobot's default first
ENCODERS = {
    "libsvtav1": ("av1", ["-pix_fmt", "yuv420p", "-g", "2", "-crf", "30", "-preset", "12"]),
    "libaom-av1": ("av1", ["-pix_fmt", "yuv420p", "-g", "2", "-crf", "30", "-b:v", "0", "-cpu-used", "8",
                           "-row-mt", "1"]),
    "libx264": ("h264", ["-pix_fmt", "yuv420p", "-g", "2", "-crf", "23"]),
}


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=None)
def available_encoders() -> frozenset[str]:
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return frozenset(line.split()[1] for line in listing.splitlines() if len(line.split()) > 1)


def pick_encoder(preferred: tuple[str, ...] = tuple(ENCODERS)) -> str:
    """The first of `preferred` this ffmpeg binary has (AV1 as LeRobot writes it, else H.264)."""
    have = available_encoders()
    for name in preferred:
        if name in have:
            return name
    raise UserError(f"the ffmpeg binary {ffmpeg_exe()} has none of the video encoders {', '.join(preferred)}")


class VideoFrames:
    """u8[len(times),H,W,3] RGB frames of `path` at `times` (s), decoded as they are sliced (`frames[a:b]`);
    a slice that starts before the previous one's end starts ffmpeg again, with a seek. `close()` ends ffmpeg."""

    def __init__(self, path: str | os.PathLike, times: np.ndarray, tolerance_s: float = DEFAULT_TOLERANCE_S,
                 name: str | None = None):
        self.path, self.times, self.tolerance = Path(path), np.asarray(times, dtype=np.float64), tolerance_s
        self.name = name or str(path)
        self._proc: subprocess.Popen | None = None
        self._row = 0  # the next row the running process can serve
        self._ahead: deque = deque()  # decoded (time, frame) not consumed yet
        self._info: queue.Queue | None = None
        self._log: deque = deque(maxlen=20)

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop = forward_slice(index, len(self), "video frames")
        if self._proc is None or start < self._row:
            self._start(start)
        while self._row < start:  # skipped rows: their frames are passed over by the matching below
            self._match(self.times[self._row])
            self._row += 1
        out = [self._match(self.times[row]) for row in range(start, stop)]
        self._row = stop
        return np.stack(out)

    def close(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self._ahead.clear()

    def __del__(self):
        self.close()

    def _start(self, row: int) -> None:
        self.close()
        if not self.path.is_file():
            raise UserError(f"{self.name}: video file {self.path} does not exist")
        seek = self.times[row] - self.tolerance - SEEK_MARGIN_S
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
        if seek > 0:
            cmd += ["-ss", f"{seek:.6f}"]
        cmd += ["-copyts", "-i", str(self.path), "-map", "0:v:0", "-an", "-sn", "-vf", "settb=1/1000000,showinfo",
                "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._info, self._log = queue.Queue(), deque(maxlen=20)
        threading.Thread(target=self._read_log, args=(self._proc.stderr, self._info, self._log), daemon=True).start()
        self._row = row

    @staticmethod
    def _read_log(stream, info: queue.Queue, log: deque) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            match = _SHOWINFO.search(line) if "showinfo" in line else None
            if match:
                info.put((match.group(1), int(match.group(2)), int(match.group(3))))
            elif line.strip():
                log.append(line.strip())
        info.put(None)

    def _next_frame(self) -> tuple[float, np.ndarray] | None:
        item = self._info.get()
        if item is None:
            return None
        pts, width, height = item
        if not pts.lstrip("-").isdigit():
            raise UserError(f"{self.name}: a frame of {self.path} has no timestamp ({pts})")
        size = width * height * 3
        data = self._proc.stdout.read(size)
        if len(data) != size:
            return None
        return int(pts) * 1e-6, np.frombuffer(data, np.uint8).reshape(height, width, 3)

    def _peek(self, k: int) -> tuple[float, np.ndarray] | None:
        while len(self._ahead) <= k:
            frame = self._next_frame()
            if frame is None:
                return None
            self._ahead.append(frame)
        return self._ahead[k]

    def _match(self, t: float) -> np.ndarray:
        """The decoded frame nearest to `t` (within the tolerance); earlier frames are dropped."""
        while True:
            head = self._peek(0)
            if head is None:
                self._proc.wait()
                raise UserError(f"{self.name}: {self.path} has no frame at {t:.6f} s (the video ends before it"
                                + (f"; ffmpeg: {self._log[-1]}" if self._log and self._proc.returncode else "")
                                + ")")
            after = self._peek(1)
            if head[0] < t - self.tolerance or (after is not None and abs(after[0] - t) < abs(head[0] - t)):
                self._ahead.popleft()
                continue
            if abs(head[0] - t) > self.tolerance:
                raise UserError(f"{self.name}: {self.path} has no frame within {self.tolerance:g} s of {t:.6f} s "
                                f"(nearest: {head[0]:.6f} s); the data's timestamps and the video disagree")
            return head[1]


class VideoEncoder:
    """Frames u8[n,H,W,3] in (`write`, any number of calls), an MP4 at `path` out (`close`); frame k of the file
    is shown at k / fps. `codec`: the info.json name of what was written ("av1" or "h264")."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], fps: int, encoder: str | None = None):
        height, width = size
        if height % 2 or width % 2:
            raise UserError(f"frames of {height}x{width} cannot be encoded as yuv420p video (odd size)")
        self.encoder = encoder or pick_encoder()
        self.codec, options = ENCODERS[self.encoder]
        self.path, self.size, self.frames = Path(path), (height, width), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._log = tempfile.TemporaryFile()
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0", "-an",
               "-c:v", self.encoder, *options, "-f", "mp4", str(self.path)]
        env = {**os.environ, "SVT_LOG": "1"}  # SVT-AV1: errors only, not its banner
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                      env=env)

    def write(self, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.shape[1:] != (*self.size, 3):
            raise UserError(f"frames of shape {list(frames.shape[1:])} for a {self.size[0]}x{self.size[1]} video")
        try:
            self._proc.stdin.write(frames.tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += len(frames)

    def close(self) -> None:
        if self._proc.stdin.closed:
            return
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            self._fail()
        self._log.close()

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._log.close()

    def _fail(self):
        self._proc.kill()
        self._proc.wait()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise UserError(f"ffmpeg ({self.encoder}) could not encode {self.path}: {tail[0]}")
