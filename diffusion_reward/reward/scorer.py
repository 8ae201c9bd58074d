"""Per-frame rewards from a `RewardModel`: the authors' reduced-step reverse chain, batch / chunked / streaming.

Entropy mode (the paper's Eq. 3): row i conditions on frames (i-k, i) (the first k rows on (i, i)), starts from
all-[MASK] tokens, evaluates the network at t = T-1, T-1-(s+1), ..., then 0 (s = skip_step; 11 evaluations for s=9),
steps with the posterior at t' = t - s (t' = t once t <= s), samples each step (Gumbel-max, or argmax with
noise=False) and returns  log p_last(x0_hat) - sum_i KL(q(.|x_t_i, x0_hat; t'_i) || p_i)  over the first n-1 steps:
a one-sample estimate of the negative conditional entropy of the next frame (nats, summed over tokens).

Likelihood mode scores the observed next frame f[i+k] with the same chain: the n terms are -KL(q(.|x_t, observed) ||
p) and, at t=0, log p(observed); their mean is the reward (as upstream). The last k rows have no successor frame, so
they carry the value of the last row that has one (a 1-frame episode scores its own frame as successor).
Likelihood-ratio mode scores two frames on that one chain (its path depends on the condition and the noise, not
on the scored frame): the observed next frame f[i+k] and the current frame f[i] held still; the reward is the
difference of their likelihoods, so a row whose frame does not change scores exactly 0.
`likelihood_compat=True` reproduces the upstream code instead: rows i < 2k condition on (f_i, f_i, f_i), later rows
on (f[i-2k], f[i-k], f[i]) and score f[i] itself (which is then part of its own condition).

Sampling noise is reproducible and independent of batching: every row draws its uniforms from its own generator
seeded by (seed, row index in the episode, sample index), so batch == chunked == streaming.

Long episodes stream through `chunked()` (`score_chunks`): pieces of frames in, rows out, memory bounded by the
chunk sizes and not by the episode, with the same numbers bit for bit as scoring the whole episode at once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..checks import check_memory
from ..data.frames import model_frames
from ..errors import UserError
from ..models.model_file import TOKENIZE_BATCH, RewardModel
from ..models.video import context_window, gather_context, index_to_log_onehot, multinomial_kl
from ..precision import resolve_dtype
from ..reward_types import SUCCESSOR_TYPES
from ..scoring_options import ScoreConfig

# noise hook: (row ids (B,), sample index) -> function(evaluation index) -> uniforms (B, K+1, L) in (0, 1)
NoiseSource = Callable[[np.ndarray, int], Callable[[int], torch.Tensor]]


@dataclass
class ScoreResult:
    raw: np.ndarray  # (T,) float32
    reward: np.ndarray | None  # (T,) float32 standardised, None when not asked


def eval_timesteps(num_timesteps: int, skip_step: int) -> list[int]:
    ts = list(range(num_timesteps - 1, -1, -1 - skip_step))
    return ts if ts[-1] == 0 else ts + [0]


def posterior_timestep(t: int, skip_step: int) -> int:
    return t - skip_step if t > skip_step else t


class RewardScorer:
    """Scores with either video model: VQ-Diffusion (the chain above) or VideoGPT (VIPER: one teacher-forced pass
    per row, models/videogpt.py; skip_step and num_samples do not apply and resolve to 0 and 1)."""

    def __init__(self, model: RewardModel, cfg: ScoreConfig, noise_source: NoiseSource | None = None):
        self.model, self.cfg = model.eval(), cfg
        self.video = model.video
        vc = model.config.video
        self.is_videogpt = model.video_model == "videogpt"
        self.cfg = cfg = dataclasses.replace(cfg, reward_type=model.resolve_reward_type(cfg.reward_type),
                                             dtype=resolve_dtype(cfg.dtype, model.device))  # "auto"s resolved
        self.num_frames, self.frame_skip = vc.num_cond_frames, vc.frame_skip
        if self.is_videogpt:
            if cfg.likelihood_compat:
                raise UserError("likelihood_compat is for VQ-Diffusion models: a VideoGPT model's likelihood already "
                                "has the authors' row layout")
            if cfg.reward_type == "likelihood_ratio":
                raise UserError("reward type likelihood_ratio is for VQ-Diffusion models; a VideoGPT model scores "
                                "likelihood (viper) or entropy")
            self.cfg = cfg = dataclasses.replace(cfg, skip_step=0, num_samples=1)
            self.timesteps = []
            row_bytes = model.config.training_bytes_per_window()  # a forward pass holds less than a training step
        else:
            if not 0 <= cfg.skip_step < self.video.num_timesteps - 1:
                raise UserError(f"skip step must be in [0, {self.video.num_timesteps - 2}], got {cfg.skip_step}")
            if cfg.likelihood_compat and (cfg.reward_type != "likelihood" or vc.context_embedding != "upstream"):
                raise UserError("likelihood_compat needs reward type likelihood and a model with the upstream "
                                "context embedding (e.g. an imported checkpoint)")
            self.timesteps = eval_timesteps(self.video.num_timesteps, cfg.skip_step)
            row_bytes = 4 * (3 * len(self.timesteps) + 4) * self.video.num_classes * self.video.num_tokens  # chain
        # upstream row layout (f[i-2k], f[i-k], f[i]) scoring f[i], early rows (f_i, f_i, f_i): VIPER's likelihood,
        # and the VQ-Diffusion likelihood_compat mode
        self.upstream_rows = cfg.likelihood_compat or (self.is_videogpt and cfg.reward_type == "likelihood")
        check_memory(cfg.chunk_size * row_bytes, f"`chunk_size` {cfg.chunk_size} (rows per network batch)",
                     "use a smaller `chunk_size` (it bounds memory and does not change the rewards)",
                     str(model.device))
        self.noise_source = noise_source or self._seeded_noise
        self.stats = None
        if cfg.standardize:
            if not cfg.task:
                raise UserError("standardised rewards need a `task`; raw scores (no standardisation) need none")
            self.stats = model.get_stats(cfg.task, cfg.reward_type, cfg.skip_step, cfg.num_samples,
                                         likelihood_compat=cfg.likelihood_compat)

    # ------------------------------------------------------------------------------------------------ public API
    def score_episode(self, frames) -> ScoreResult:
        """uint8 frames (T, H, W, 3) -> ScoreResult with row i = the transition that starts at frame i."""
        return self.score_chunks([frames])

    def score_chunks(self, chunks: Iterable, progress: Callable[[int], None] | None = None) -> ScoreResult:
        """One episode given as consecutive pieces of frames (e.g. slices of an HDF5 dataset): the same numbers
        as `score_episode` on the whole episode, holding one piece and a bounded window (`ChunkedScore`)."""
        scoring = self.chunked(progress)
        return concat_results([scoring.push(frames) for frames in chunks] + [scoring.finish()])

    def score_token_episode(self, tokens: torch.Tensor, progress: Callable[[int], None] | None = None) -> ScoreResult:
        """Episode already tokenised (T, L): rows are scored in chunks of `chunk_size`."""
        scoring = self.chunked(progress)
        return concat_results([scoring.push_tokens(tokens), scoring.finish()])

    def chunked(self, progress: Callable[[int], None] | None = None) -> "ChunkedScore":
        return ChunkedScore(self, progress)

    def stream(self) -> "ScoreStream":
        return ScoreStream(self)

    def standardize(self, raw: np.ndarray) -> np.ndarray | None:
        if self.stats is None:
            return None
        mean, std = self.stats
        return ((raw - np.float32(mean)) / np.float32(std)).astype(np.float32)

    # ------------------------------------------------------------------------------------------------ row layout
    @property
    def lookahead(self) -> int:
        """Frames after row i that its score needs: the successor frame i+k in VQ-Diffusion likelihood and
        likelihood-ratio mode."""
        return self.frame_skip if self.cfg.reward_type in SUCCESSOR_TYPES and not self.upstream_rows else 0

    @property
    def context_reach(self) -> int:
        """Frames before row i that its condition may use."""
        return self.frame_skip * (self.num_frames if self.upstream_rows else self.num_frames - 1)

    def num_scored_rows(self, num_frames: int) -> int:
        """Rows with their own score; likelihood rows after that (no successor frame) carry the last one."""
        return num_frames - self.lookahead if num_frames > self.lookahead else num_frames

    def row_frames(self, rows: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Episode frame indices of the condition (B, F; -1 = [PAD]) and the target of scored `rows`: (B,), None
        (entropy), or (B, 2) for likelihood_ratio (the next frame, then the current one held still)."""
        k, f = self.frame_skip, self.num_frames
        rows = np.asarray(rows)
        if self.upstream_rows:  # (f[i-2k], f[i-k], f[i]) scoring f[i]; early rows repeat f[i]
            window = np.stack([rows - (f - j) * k for j in range(f + 1)], 1)
            window = np.where((rows < f * k)[:, None], rows[:, None], window)
            # VQ-Diffusion compat conditions on all three frames (the scored one included), VideoGPT on the first two
            return (window if self.cfg.likelihood_compat else window[:, :f]), rows
        cond = context_window(rows, f, k, self.model.config.video.context_padding)
        if self.cfg.reward_type == "entropy":
            return cond, None
        # next frame; an episode too short to have one scores the frame itself as its own successor
        successor = rows + k if num_frames > k else rows
        return cond, (np.stack([successor, rows], 1) if self.cfg.reward_type == "likelihood_ratio" else successor)

    def condition_rows(self, tokens: torch.Tensor, rows: np.ndarray, first_frame: int = 0,
                       num_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Condition tokens (B, F*L) and target tokens (B, L), (B, 2, L) or None of `rows` (`row_frames`);
        tokens[0] is frame `first_frame` of an episode of `num_frames` frames (default: the whole episode)."""
        cond_idx, target_idx = self.row_frames(rows, num_frames or first_frame + len(tokens))
        cond = gather_context(tokens, np.where(cond_idx < 0, -1, cond_idx - first_frame), self.video.pad_id)
        return cond, (None if target_idx is None else tokens[target_idx - first_frame])

    # ----------------------------------------------------------------------------------------------------- chain
    @torch.no_grad()
    def score_tokens(self, cond_tokens: torch.Tensor, target_tokens: torch.Tensor | None, row_ids: np.ndarray,
                     trace: dict | None = None) -> np.ndarray:
        """Raw score (B,) of rows given their condition tokens (B, F*L) and, in likelihood mode, target (B, L)
        (likelihood_ratio: targets (B, 2, L), the next frame and the current one).

        `trace`, if a dict, receives the chain of the last sample: x_t (B, n, L), x0_hat (B, L), terms (B, n)
        (columns 0..n-2 = -KL per step, n-1 = final log-likelihood; likelihood_ratio: (B, 2, n), one per target).
        """
        device = self.model.device
        with self._autocast():
            if self.is_videogpt:
                cond = cond_tokens.to(device)
                out = (self.video.negative_entropy(cond) if target_tokens is None
                       else self.video.log_likelihood(cond, target_tokens.to(device)))
                return out.float().cpu().numpy()
            cond = self.video.condition(cond_tokens.to(device))
            total = torch.zeros(len(cond_tokens), dtype=torch.float32, device=device)
            for sample in range(self.cfg.num_samples):
                noise = self.noise_source(np.asarray(row_ids), sample) if self.cfg.noise else None
                terms = self._chain_terms(cond, target_tokens, noise, trace)
                if self.cfg.reward_type == "entropy":
                    total += terms.sum(1)
                elif self.cfg.reward_type == "likelihood":
                    total += terms.mean(1)
                else:  # likelihood_ratio: next frame vs the current one held, on the same chain
                    total += terms[:, 0].mean(1) - terms[:, 1].mean(1)
        return (total / self.cfg.num_samples).float().cpu().numpy()

    @torch.no_grad()
    def sample_next_tokens(self, cond_tokens: torch.Tensor, row_ids: np.ndarray, num_samples: int) -> torch.Tensor:
        """The entropy chain's sampled next frames x0_hat: (num_samples, B, L) tokens, sample s seeded as sample s
        of the reward (so sample 0 is the frame the reward of these rows scored)."""
        if self.is_videogpt:
            raise UserError("generated next frames (report --diversity) need a VQ-Diffusion model; VIPER's VideoGPT "
                            "is scored teacher-forced and samples nothing")
        out = []
        with self._autocast():
            cond = self.video.condition(cond_tokens.to(self.model.device))
            for sample in range(num_samples):
                trace: dict = {}
                self._chain_terms(cond, None, self.noise_source(np.asarray(row_ids), sample), trace)
                out.append(trace["x0_hat"])
        return torch.stack(out)

    def _chain_terms(self, cond, target_tokens, noise, trace) -> torch.Tensor:
        """One sample of the chain (inside the caller's autocast region) -> terms (B, n) of its own sample
        (target None) or of the target (B, L); targets (B, m, L) -> (B, m, n), all on the same chain."""
        video, b = self.video, cond.kv[0][0].shape[0]
        device = self.model.device
        x_t = torch.full((b, video.num_tokens), video.mask_id, dtype=torch.long, device=device)
        steps = []  # (x_t, model posterior, t') per evaluation
        for e, t in enumerate(self.timesteps):
            tt = torch.full((b,), t, dtype=torch.long, device=device)
            tp = torch.full((b,), posterior_timestep(t, self.cfg.skip_step), dtype=torch.long, device=device)
            log_x0 = video.predict_start(x_t, tt, cond)
            model_log_prob = video.q_posterior(log_x0.float(), x_t, tp)
            steps.append((x_t, model_log_prob, tp))
            x_t = video.log_sample(model_log_prob, None if noise is None else noise(e).to(device))
        x0 = x_t if target_tokens is None else target_tokens.to(device)
        terms = (self._target_terms(steps, x0) if x0.dim() == 2 else
                 torch.stack([self._target_terms(steps, x0[:, j]) for j in range(x0.shape[1])], 1))
        if trace is not None:
            trace.update(x_t=torch.stack([s[0] for s in steps], 1).cpu(), x0_hat=x_t.cpu(), terms=terms.cpu())
        return terms

    def _target_terms(self, steps, x0: torch.Tensor) -> torch.Tensor:
        """The chain's terms (B, n) for frame tokens x0 (B, L): -KL(q(.|x_t, x0) || p) per step, then log p(x0)."""
        video = self.video
        log_x0 = index_to_log_onehot(x0, video.num_classes)
        terms = [-multinomial_kl(video.q_posterior(log_x0, x_t_, tp), model_log_prob).sum(1)
                 for x_t_, model_log_prob, tp in steps[:-1]]
        terms.append(steps[-1][1].gather(1, x0.unsqueeze(1)).squeeze(1).sum(1))
        return torch.stack(terms, 1)

    def _seeded_noise(self, row_ids: np.ndarray, sample: int) -> Callable[[int], torch.Tensor]:
        shape = (self.video.num_classes, self.video.num_tokens)
        gens = [torch.Generator().manual_seed(_row_seed(self.cfg.seed, int(r), sample)) for r in row_ids]
        return lambda _e: torch.stack([torch.rand(shape, generator=g) for g in gens])

    # ---------------------------------------------------------------------------------------------------- inputs
    def prepare_frames(self, frames) -> np.ndarray:
        """Validate (T, H, W, 3) uint8 frames; center-crop + resize only when `resize` is set (`data.frames`)."""
        return model_frames(frames, self.model.image_size, self.cfg.resize)

    def _autocast(self):
        """bf16 autocast for the networks, one region per call: autocast caches each weight's bf16 copy for the
        region, so the weights are cast once per chain and not at each of its network evaluations (1.08-1.2x on a
        streamed row). The diffusion math inside runs float32 (none of its ops is on autocast's bf16 list)."""
        if self.cfg.dtype == "bfloat16":
            return torch.autocast(self.model.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


class ChunkedScore:
    """One episode pushed in consecutive pieces of frames of any size; holds a bounded window, not the episode.

    `push(frames)` returns the rows it completed (in order), `finish()` the rest; together they equal the whole
    episode scored at once, bit for bit, however the frames were cut: the codec always encodes the same aligned
    batches of TOKENIZE_BATCH frames (0-255, 256-511, ...) and the network the same aligned batches of
    `chunk_size` rows, so every network call sees the same inputs. Held: fewer than TOKENIZE_BATCH frames
    waiting for the codec, the tokens of rows not scored yet plus the `context_reach` frames behind them
    (< chunk_size + lookahead + context_reach frames after each push), and one network batch.
    """

    def __init__(self, scorer: RewardScorer, progress: Callable[[int], None] | None = None):
        self.scorer, self.progress = scorer, progress
        self.num_frames = 0  # frames encoded so far
        self.num_rows = 0  # rows returned so far
        self._waiting: list[np.ndarray] = []  # prepared frames not encoded yet, oldest first
        self._tokens = torch.zeros(0, scorer.video.num_tokens, dtype=torch.long, device=scorer.model.device)
        self._first_frame = 0  # episode frame index of _tokens[0]
        self._last_raw = np.zeros(0, np.float32)  # the last scored row, which likelihood mode's last rows carry

    @property
    def frames_held(self) -> int:
        """Frames held now: waiting for the codec, plus the token window."""
        return sum(map(len, self._waiting)) + len(self._tokens)

    def push(self, frames) -> ScoreResult:
        self._waiting.append(self.scorer.prepare_frames(frames))
        waiting = sum(map(len, self._waiting))
        self._encode(waiting - waiting % TOKENIZE_BATCH)
        return self._score_until(self._ready_rows())

    def push_tokens(self, tokens: torch.Tensor) -> ScoreResult:
        """Frames already tokenised (n, L), e.g. a whole episode; not mixed with `push` in one episode."""
        self._add_tokens(tokens)
        return self._score_until(self._ready_rows())

    def finish(self) -> ScoreResult:
        """The remaining rows, once the episode has no more frames (likelihood: the last rows carry the last score)."""
        self._encode(sum(map(len, self._waiting)))
        if self.num_frames == 0:
            raise UserError("no frames to score")
        scored = self._score_until(self.scorer.num_scored_rows(self.num_frames))
        carried = np.repeat(self._last_raw[-1:], self.num_frames - self.num_rows)
        self.num_rows = self.num_frames
        if self.progress and len(carried):
            self.progress(len(carried))
        return concat_results([scored, ScoreResult(raw=carried, reward=self.scorer.standardize(carried))])

    def _encode(self, count: int) -> None:
        """Tokenise the first `count` waiting frames (a multiple of TOKENIZE_BATCH, or all when finishing)."""
        if count == 0:
            return
        frames = self._waiting[0] if len(self._waiting) == 1 else np.concatenate(self._waiting)
        self._waiting = [frames[count:]] if count < len(frames) else []
        self._add_tokens(self.scorer.model.tokenize(frames[:count]))

    def _add_tokens(self, tokens: torch.Tensor) -> None:
        self._tokens = torch.cat([self._tokens, tokens.to(self._tokens.device)])
        self.num_frames += len(tokens)

    def _ready_rows(self) -> int:
        """Rows up to which whole network batches have every frame they need."""
        ready = self.num_frames - self.scorer.lookahead - self.num_rows
        return self.num_rows + max(0, ready) // self.scorer.cfg.chunk_size * self.scorer.cfg.chunk_size

    def _score_until(self, end: int) -> ScoreResult:
        s, raw = self.scorer, []
        for start in range(self.num_rows, end, s.cfg.chunk_size):
            rows = np.arange(start, min(start + s.cfg.chunk_size, end))
            raw.append(s.score_tokens(*s.condition_rows(self._tokens, rows, self._first_frame, self.num_frames), rows))
            if self.progress:
                self.progress(len(rows))
        raw = np.concatenate(raw) if raw else np.zeros(0, np.float32)
        self._last_raw = raw[-1:] if len(raw) else self._last_raw
        self.num_rows = end
        keep_from = max(self._first_frame, self.num_rows - s.context_reach)  # older frames condition no row left
        self._tokens = self._tokens[keep_from - self._first_frame:]
        self._first_frame = keep_from
        return ScoreResult(raw=raw, reward=s.standardize(raw))


def concat_results(parts: list[ScoreResult]) -> ScoreResult:
    raw = np.concatenate([p.raw for p in parts])
    return ScoreResult(raw=raw, reward=None if parts[0].reward is None else np.concatenate([p.reward for p in parts]))


class ScoreStream:
    """Push one frame at a time; returns the same numbers as `score_episode` on the whole episode.

    Entropy mode: `push(frame_i)` returns (raw_i, reward_i) at once. Likelihood mode (non-compat) needs the
    successor frame: `push(frame_i)` returns row i-k, or None while i < k; `finish()` returns the carried last rows.
    """

    def __init__(self, scorer: RewardScorer):
        self.scorer = scorer
        self.reset()

    def reset(self) -> None:
        self.tokens: list[torch.Tensor] = []  # the last few frames' tokens
        self.num_pushed = 0
        self.last_raw: float | None = None
        self.timings = {"encode": 0.0, "chain": 0.0}  # seconds the last push spent in the codec and the chain

    def push(self, frame) -> tuple[float, float | None] | None:
        s = self.scorer
        frame = np.asarray(frame)
        if frame.ndim != 3:
            size = s.model.image_size
            raise UserError(f"a frame must have shape ({size}, {size}, 3), got {frame.shape}")
        start = time.perf_counter()
        self.tokens.append(s.model.tokenize(s.prepare_frames(frame[None]))[0])
        encoded = time.perf_counter()
        self.tokens = self.tokens[-((s.num_frames + 1) * s.frame_skip + 1):]
        self.num_pushed += 1
        i = self.num_pushed
        row = i - 1 - s.lookahead
        result = None if row < 0 else self._score_row(row, i)
        self.timings = {"encode": encoded - start, "chain": time.perf_counter() - encoded}
        return result

    def finish(self) -> list[tuple[float, float | None]]:
        """Rows still open at the end of the episode (likelihood mode: the carried last k rows)."""
        s = self.scorer
        n = self.num_pushed
        if s.lookahead == 0 or n == 0:
            return []
        k = s.frame_skip
        if n <= k:  # no row had a successor: score the frames as their own successors, as the batch call does
            return [self._score_row(r, n) for r in range(n)]
        return [self._result(self.last_raw) for _ in range(k)]

    def _score_row(self, row: int, num_frames: int) -> tuple[float, float | None]:
        s = self.scorer
        window = torch.stack(self.tokens)
        rows = np.array([row])
        cond, target = s.condition_rows(window, rows, first_frame=num_frames - len(window), num_frames=num_frames)
        self.last_raw = float(s.score_tokens(cond, target, rows)[0])
        return self._result(self.last_raw)

    def _result(self, raw: float) -> tuple[float, float | None]:
        std = self.scorer.standardize(np.array([raw], np.float32))
        return raw, (None if std is None else float(std[0]))


def _row_seed(seed: int, row: int, sample: int) -> int:
    return int(np.random.SeedSequence([seed, row, sample]).generate_state(1, np.uint64)[0]) >> 1  # numpy 1 and 2 alike
