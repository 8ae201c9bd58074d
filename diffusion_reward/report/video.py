"""MP4s of report episodes with their reward curve below the video (`diffusion-reward report --video`).

Each MP4 shows one episode: its frames scaled up (nearest neighbour, to about 256 px wide) above its reward curve,
with a red cursor at the current frame moving along the curve; the same-seed expert's curve is drawn in grey for
reference. One MP4 per epsilon, all of one reset seed (the report rolls out the same seeds at every epsilon), named
`episode_eps<epsilon>_seed<seed>.mp4`. Frame k of a video is episode frame k (as many video frames as the episode
has frames and rewards), shown at `VIDEO_FPS`. The curve is drawn once with matplotlib; the cursor is painted on a
copy per frame. H.264 (yuv420p) through the ffmpeg binary imageio-ffmpeg ships (`data/video.py`), which every
player and browser opens.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import UserError
from .episodes import ScoredEpisode

VIDEO_FPS = 10
VIDEO_WIDTH = 256  # frames are scaled up by the largest integer factor that stays within this width (at least 1)
PLOT_HEIGHT = 128
CURSOR_RGB = (220, 20, 20)
CURSOR_HALF_WIDTH = 1  # a 3 px wide line, so yuv420p's 2 x 2 colour subsampling keeps it red


def video_name(episode: ScoredEpisode) -> str:
    return f"episode_eps{episode.epsilon:g}_seed{episode.seed}.mp4"


def pick_episodes(episodes: list[ScoredEpisode], seed: int | None) -> list[ScoredEpisode]:
    """One episode per epsilon, all of `seed` (default: the first expert episode's); UserError when no episode
    has that seed. Controls are left out."""
    rollouts = [e for e in episodes if e.kind == "epsilon"]
    if seed is None:
        seed = next(e.seed for e in rollouts if e.epsilon == 0.0)
    chosen = {}
    for e in rollouts:
        if e.seed == seed and e.epsilon not in chosen:
            chosen[e.epsilon] = e
    if not chosen:
        seeds = sorted({e.seed for e in rollouts})
        raise UserError(f"`video_seed` {seed}: no episode of the report has that reset seed (seeds: "
                        f"{', '.join(map(str, seeds[:20]))}{' ...' if len(seeds) > 20 else ''}; nothing was written)")
    return [chosen[eps] for eps in sorted(chosen)]


def write_videos(episodes: list[ScoredEpisode], ylabel: str, out: Path, seed: int | None = None,
                 fps: int = VIDEO_FPS) -> list[str]:
    """The MP4 of each chosen episode in `out`; returns their file names."""
    chosen = pick_episodes(episodes, seed)
    expert = next((e for e in chosen if e.epsilon == 0.0), None)
    names = []
    for episode in chosen:
        reference = expert if expert is not None and episode is not expert else None
        names.append(video_name(episode))
        episode_video(episode, reference, ylabel, out / names[-1], fps)
    return names


def episode_video(episode: ScoredEpisode, reference: ScoredEpisode | None, ylabel: str, path: Path,
                  fps: int = VIDEO_FPS) -> None:
    """One MP4: the episode's frames over its reward curve with a moving cursor; written under a temporary name and
    renamed when complete."""
    from ..data.video import VideoEncoder, available_encoders

    frames = np.asarray(episode.frames)
    reward = np.asarray(episode.reward, dtype=np.float64)
    if len(frames) != len(reward):
        raise UserError(f"episode eps {episode.epsilon:g} seed {episode.seed}: {len(frames)} frames but "
                        f"{len(reward)} rewards")
    scale = max(1, VIDEO_WIDTH // frames.shape[2])
    width = _even(frames.shape[2] * scale)
    top_height = _even(frames.shape[1] * scale)
    plot, to_pixel = _curve(episode, reward, reference, ylabel, width)
    tmp = path.with_name(path.name + ".tmp.mp4")
    encoder = VideoEncoder(tmp, (top_height + plot.shape[0], width), fps,
                           encoder="libx264" if "libx264" in available_encoders() else None)
    try:
        canvas = np.zeros((top_height + plot.shape[0], width, 3), np.uint8)
        for k, frame in enumerate(frames):
            big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
            canvas[:] = 0
            canvas[:big.shape[0], :big.shape[1]] = big
            canvas[top_height:] = plot
            _cursor(canvas[top_height:], *to_pixel(k, reward[k]))
            encoder.write(canvas[None])
        encoder.close()
    except BaseException:
        encoder.abort()
        if tmp.exists():
            tmp.unlink()
        raise
    os.replace(tmp, path)


def _even(n: int) -> int:
    return n + (n % 2)


def _curve(episode: ScoredEpisode, reward: np.ndarray, reference: ScoredEpisode | None, ylabel: str, width: int):
    """(the plot as u8[PLOT_HEIGHT, width, 3], (frame, reward) -> (column, row) in it)."""
    fig = Figure(figsize=(width / 100, PLOT_HEIGHT / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.16, 0.2, 0.8, 0.68))
    if reference is not None:
        ax.plot(np.asarray(reference.reward), color="0.7", linewidth=1, label="expert")
    ax.plot(reward, color="black", linewidth=1.2, label=f"eps {episode.epsilon:g}")
    finite = reward[np.isfinite(reward)]
    if finite.size and reference is None:
        pad = 0.05 * (np.ptp(finite) or 1.0)
        ax.set_ylim(finite.min() - pad, finite.max() + pad)
    ax.set_xlim(0, max(1, len(reward) - 1))
    ax.tick_params(labelsize=5, length=2, pad=1)
    ax.set_ylabel(ylabel, fontsize=5, labelpad=1)
    ax.set_title(f"eps {episode.epsilon:g}, seed {episode.seed}, success {episode.success}", fontsize=6, pad=2)
    if reference is not None:
        ax.legend(fontsize=4, loc="best", frameon=False)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    height = image.shape[0]
    y_low, y_high = ax.get_ylim()
    (x0, y0), (x1, y1) = ax.transData.transform([(0, y_low), (max(1, len(reward) - 1), y_high)])

    def to_pixel(k: int, value: float) -> tuple[int, int, int, int]:
        """(cursor column, top row, bottom row of the axes, row of the value) in image pixels (rows from the top)."""
        column = x0 + (x1 - x0) * k / max(1, len(reward) - 1)
        value = value if np.isfinite(value) else y_low
        row = y0 + (y1 - y0) * (value - y_low) / ((y_high - y_low) or 1.0)
        return (int(round(column)), int(round(height - y1)), int(round(height - y0)),
                int(round(height - min(max(row, y0), y1))))

    return image, to_pixel


def _cursor(plot: np.ndarray, column: int, top: int, bottom: int, row: int) -> None:
    """A vertical red line over the axes at `column` and a red square at the reward's `row`."""
    h, w = plot.shape[:2]
    left, right = max(0, column - CURSOR_HALF_WIDTH), min(w, column + CURSOR_HALF_WIDTH + 1)
    plot[max(0, top):min(h, bottom + 1), left:right] = CURSOR_RGB
    plot[max(0, row - 3):min(h, row + 4), max(0, column - 3):min(w, column + 4)] = CURSOR_RGB
