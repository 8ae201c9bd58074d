"""The frames the reward model sees, written once: camera messages <-> numpy RGB, the crop, the resize.

Every path that feeds the model (scorer `resize`, the nodes' `crop`, relabel, training) goes through
`model_frames` / `to_model_frame` / `resize_frames` here.

`image_to_rgb(msg)` turns a `sensor_msgs/Image` (rgb8, bgr8, rgba8, bgra8, mono8, and the 16-bit
rgb16, bgr16, mono16 with either byte order) or a `sensor_msgs/CompressedImage` (anything OpenCV
decodes: jpeg, png) into u8[H,W,3] RGB. Row padding (`step` > width * pixel size) is skipped.
Anything else raises `ImageConversionError`; nodes log it once and skip the frame.

Crop spec (parameter `crop`), applied to the full camera frame before the model's resize:
  `center`    the largest centred square (default; what training and offline scoring do),
  `none`      the whole frame (squashed to a square by the resize if it is not one),
  `x,y,w,h`   a fixed region of interest in pixels, e.g. `80,0,480,480` for a 640x480 camera
              (a non-square region is then center-cropped to its square, like a full frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UserError
from ..msgs import CompressedImage, Header, Image, Time


class ImageConversionError(UserError):
    """A camera message this module cannot turn into an RGB frame (the frame is skipped)."""


# encoding -> (channels, bytes per channel, channel order of the first 3 channels, or "mono")
ENCODINGS = {
    "rgb8": (3, 1, "rgb"), "bgr8": (3, 1, "bgr"), "rgba8": (4, 1, "rgb"), "bgra8": (4, 1, "bgr"),
    "mono8": (1, 1, "mono"), "rgb16": (3, 2, "rgb"), "bgr16": (3, 2, "bgr"), "mono16": (1, 2, "mono"),
}


def image_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """u8[H,W,3] RGB from a raw or compressed image message; raises ImageConversionError."""
    if isinstance(msg, CompressedImage) or hasattr(msg, "format"):
        return _decode_compressed(msg)
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, depth, order = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * depth
    if h <= 0 or w <= 0:
        raise ImageConversionError(f"empty image ({w}x{h}, encoding {msg.encoding})")
    if step < row_bytes:
        raise ImageConversionError(f"image step {step} is shorter than a row ({w} px x {channels * depth} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * (h - 1) + row_bytes:
        raise ImageConversionError(f"image data has {data.size} bytes, {w}x{h} {msg.encoding} needs {step * h}")
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row_bytes), strides=(step, 1))
    if depth == 2:  # keep the high byte: 16-bit intensities -> 8 bit
        pixels = (rows.view(">u2" if msg.is_bigendian else "<u2") >> 8).astype(np.uint8)
    else:
        pixels = rows
    pixels = pixels.reshape(h, w, channels)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., :3] if order == "rgb" else pixels[..., 2::-1]
    return np.ascontiguousarray(rgb)


def _decode_compressed(msg: CompressedImage) -> np.ndarray:
    data = np.frombuffer(msg.data, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageConversionError(f"cannot decode compressed image (format '{msg.format}', {data.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, stamp_ns: int = 0, frame_id: str = "", encoding: str = "rgb8") -> Image:
    """sensor_msgs/Image (rgb8 or bgr8, unpadded rows) from u8[H,W,3] RGB."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected u8[H,W,3], got {rgb.dtype}{list(rgb.shape)}")
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError("encoding must be rgb8 or bgr8")
    pixels = rgb if encoding == "rgb8" else rgb[..., ::-1]
    h, w = rgb.shape[:2]
    return Image(header=Header(stamp=Time.from_ns(stamp_ns), frame_id=frame_id), height=h, width=w,
                 encoding=encoding, is_bigendian=0, step=3 * w, data=np.ascontiguousarray(pixels).tobytes())


def model_frames(frames, size: int, resize: bool) -> np.ndarray:
    """Frames u8[T,size,size,3] for a model of input `size`: validated (T, H, W, 3) uint8 RGB, center-cropped and
    resized (`resize_frames`) only when `resize` is set (else another size is an error)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserError(f"frames must have shape (T, {size}, {size}, 3) (RGB, channels last), got {frames.shape}")
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating) and np.isnan(frames).any():
            raise UserError("frames contain NaN; expected uint8 RGB frames")
        raise UserError(f"frames must be uint8 RGB (0..255), got dtype {frames.dtype}")
    if len(frames) == 0:
        raise UserError("no frames to score")
    if frames.shape[1:3] != (size, size):
        if not resize:
            raise UserError(f"frames must have shape (T, {size}, {size}, 3), got {frames.shape}; "
                            f"pass `resize` to center-crop and resize them")
        frames = resize_frames(frames, size)
    return np.ascontiguousarray(frames)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Center-crop every frame to a square, then cv2 INTER_AREA resize to size x size."""
    h, w = frames.shape[1:3]
    m = min(h, w)
    y, x = (h - m) // 2, (w - m) // 2
    return np.stack([cv2.resize(np.ascontiguousarray(f[y:y + m, x:x + m]), (size, size),
                                interpolation=cv2.INTER_AREA) for f in frames])


# -- crop ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crop:
    """`mode` is 'center', 'none' or 'roi'; `roi` = (x, y, w, h) for 'roi'."""

    mode: str = "center"
    roi: tuple[int, int, int, int] | None = None

    @classmethod
    def parse(cls, spec: str) -> "Crop":
        spec = spec.strip().lower()
        if spec in ("center", "none"):
            return cls(spec)
        parts = spec.split(",")
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise UserError(f"crop must be 'center', 'none' or 'x,y,w,h' in pixels, got '{spec}'") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise UserError(f"crop region x,y,w,h must have x,y >= 0 and w,h > 0, got '{spec}'")
        return cls("roi", (x, y, w, h))

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The cropped view of an H x W frame (raises ImageConversionError if the region does not fit)."""
        h, w = rgb.shape[:2]
        if self.mode == "center":
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            return rgb[top:top + side, left:left + side]
        if self.mode == "roi":
            x, y, cw, ch = self.roi
            if x + cw > w or y + ch > h:
                raise ImageConversionError(f"crop region {self.roi} does not fit in a {w}x{h} image")
            return rgb[y:y + ch, x:x + cw]
        return rgb


def to_model_frame(rgb: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """The frame the reward model scores (u8[size,size,3]): the crop, then the scorer's own center-crop +
    INTER_AREA resize (`resize_frames`), so live and offline frames match."""
    region = np.ascontiguousarray(crop.apply(rgb))
    if crop.mode == "none":  # the whole frame, squashed to a square
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    return resize_frames(region[None], size)[0]
