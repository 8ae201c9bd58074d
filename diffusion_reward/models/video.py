"""VQ-Diffusion video model (microsoft/VQ-Diffusion as trimmed by the Diffusion Reward authors).

A mask-and-replace discrete diffusion over the next frame's tokens. The transformer predicts log p(x0 | x_t, context)
and a step of the reverse chain is the analytic posterior q(x_{t-1} | x_t, x0_pred). Names equal the keys of the
authors' `ema` state_dict (`condition_emb.emb.weight`, `transformer.blocks.N...`, `log_at`, ...).

Shapes: B batch, L content tokens (64), K codes (class K is [MASK], K+1 classes), Lc context tokens, C = n_embd.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .presets import VideoConfig

LOG_FLOOR = -70.0  # log-probabilities are clamped to [-70, 0] everywhere, as upstream


# --------------------------------------------------------------------------------------------------- diffusion math

def index_to_log_onehot(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, L) int -> (B, num_classes, L) with log(1) and log(1e-30)."""
    onehot = F.one_hot(x, num_classes).permute(0, 2, 1)
    return torch.log(onehot.float().clamp(min=1e-30))


def log_add_exp(a, b):
    m = torch.max(a, b)
    return m + torch.log(torch.exp(a - m) + torch.exp(b - m))


def log_1_min_a(a):
    return torch.log(1 - a.exp() + 1e-40)


def multinomial_kl(log_p1, log_p2):  # KL(p1 || p2) over the class dim -> (B, L)
    return (log_p1.exp() * (log_p1 - log_p2)).sum(dim=1)


def log_categorical(log_x, log_p):  # E_x[log p] over the class dim -> (B, L)
    return (log_x.exp() * log_p).sum(dim=1)


def alpha_schedule(steps: int, num_codes: int, att_1=0.99999, att_T=0.000009, ctt_1=0.000009, ctt_T=0.99999):
    """VQ-Diffusion `alpha1`: keep prob att falls and mask prob ctt rises linearly; float64 numpy arrays.

    One forward step q(x_t | x_{t-1}) keeps a token with prob a_t + b_t, replaces it by each of the K codes with
    prob b_t, and masks it with prob c_t; a [MASK] stays [MASK]. Returned, per step t:
        at, bt, ct     one step:      a_t, b_t, c_t          (q(x_t | x_{t-1}), `q_pred_one_timestep`)
        att, btt, ctt  cumulative:    abar_t, bbar_t, cbar_t  (q(x_t | x_0), `q_pred`), with one extra entry
                       (1, 0, 0) at index T that `q_pred(.., t=-1)` reaches: the identity.
    """
    att = np.arange(0, steps) / (steps - 1) * (att_T - att_1) + att_1
    att = np.concatenate(([1], att))
    at = att[1:] / att[:-1]
    ctt = np.arange(0, steps) / (steps - 1) * (ctt_T - ctt_1) + ctt_1
    ctt = np.concatenate(([0], ctt))
    one_minus_ct = (1 - ctt)[1:] / (1 - ctt)[:-1]
    ct = 1 - one_minus_ct
    bt = (1 - at - ct) / num_codes
    att = np.concatenate((att[1:], [1]))
    ctt = np.concatenate((ctt[1:], [0]))
    btt = (1 - att - ctt) / num_codes
    return at, bt, ct, att, btt, ctt


def context_window(rows: np.ndarray, num_frames: int, frame_skip: int, padding: str) -> np.ndarray:
    """Episode frame indices (B, F) that condition row i, the transition from frame i to frame i + k (k the frame
    skip): frames i-(F-1)k, ..., i-k, i, oldest first. A window reaching before the episode start is, with
    padding "repeat" (upstream), frame i in every slot, so row 0 is (f0, f0); with "token", -1 in the slots
    before the start ([PAD]). Training and scoring both build their contexts here."""
    rows = np.asarray(rows)
    window = np.stack([rows - (num_frames - 1 - j) * frame_skip for j in range(num_frames)], 1)
    if padding == "token":
        return np.where(window < 0, -1, window)
    return np.where((rows < (num_frames - 1) * frame_skip)[:, None], rows[:, None], window)


def gather_context(tokens: torch.Tensor, window: np.ndarray, pad_id: int | None) -> torch.Tensor:
    """Context token ids (B, F*L) of frame indices `window` (B, F) into `tokens` (T, L); -1 -> pad_id."""
    idx = torch.as_tensor(window)
    cond = tokens[idx.clamp(min=0)]
    if pad_id is not None:
        cond[idx < 0] = pad_id
    return cond.reshape(len(window), -1)


def _device(generator, default):
    return generator.device if generator is not None else default


def _extract(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a.gather(-1, t).view(-1, 1, 1)


# ------------------------------------------------------------------------------------------------------ transformer

def gelu2(x):
    return x * torch.sigmoid(1.702 * x)


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, scaled and shifted by a learned embedding of the timestep."""

    def __init__(self, n_embd: int, diffusion_steps: int):
        super().__init__()
        self.emb = nn.Embedding(diffusion_steps, n_embd)
        self.linear = nn.Linear(n_embd, n_embd * 2)
        self.layernorm = nn.LayerNorm(n_embd, elementwise_affine=False)

    def forward(self, x, t):  # x (B, L, C), t (B,)
        scale, shift = self.linear(F.silu(self.emb(t))).unsqueeze(1).chunk(2, dim=2)
        return self.layernorm(x) * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head attention, no mask. Self-attention when kv_dim == n_embd and keys come from x."""

    def __init__(self, n_embd: int, n_head: int, kv_dim: int):
        super().__init__()
        self.n_head = n_head
        self.key = nn.Linear(kv_dim, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(kv_dim, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def kv(self, src):  # (B, S, kv_dim) -> k, v each (B, nh, S, hd)
        b, s, _ = src.shape
        k = self.key(src).view(b, s, self.n_head, -1).transpose(1, 2)
        v = self.value(src).view(b, s, self.n_head, -1).transpose(1, 2)
        return k, v

    def forward(self, x, kv=None):  # x (B, L, C); kv precomputed for cross-attention, else self-attention
        b, n, c = x.shape
        k, v = self.kv(x) if kv is None else kv
        q = self.query(x).view(b, n, self.n_head, -1).transpose(1, 2)  # (B, nh, L, hd)
        if torch.is_grad_enabled():  # training: explicit softmax as upstream (the fused kernel's backward ran 6x
            # slower on CPU at these 8- and 16-wide heads)
            att = F.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1))), dim=-1)  # (B, nh, L, S)
            y = att @ v
        else:  # scoring: the same softmax(q k^T / sqrt(hd)) v fused: the paper chain 1.17x faster
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class ConvMLP(nn.Module):
    """3x3 convolutions on the token grid with GELU2 in between."""

    def __init__(self, n_embd: int, hidden_times: int):
        super().__init__()
        self.conv1 = nn.Conv2d(n_embd, n_embd * hidden_times, 3, 1, 1)
        self.conv2 = nn.Conv2d(n_embd * hidden_times, n_embd, 3, 1, 1)

    def forward(self, x):  # (B, L, C) with L = s*s
        b, n, c = x.shape
        s = int(math.isqrt(n))
        h = x.transpose(1, 2).reshape(b, c, s, s)
        h = self.conv2(gelu2(self.conv1(h)))
        return h.reshape(b, c, n).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, cfg: VideoConfig):
        super().__init__()
        self.ln1 = AdaLayerNorm(cfg.n_embd, cfg.diffusion_steps)
        self.ln1_1 = AdaLayerNorm(cfg.n_embd, cfg.diffusion_steps)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.attn1 = Attention(cfg.n_embd, cfg.n_head, cfg.n_embd)
        self.attn2 = Attention(cfg.n_embd, cfg.n_head, cfg.condition_dim)
        self.mlp = ConvMLP(cfg.n_embd, cfg.mlp_hidden_times)

    def forward(self, x, t, cond_kv):
        x = x + self.attn1(self.ln1(x, t))
        x = x + self.attn2(self.ln1_1(x, t), kv=cond_kv)
        return x + self.mlp(self.ln2(x))


class ContentEmbedding(nn.Module):
    """Token embedding (K+1 rows, the last is [MASK]) + row embedding + column embedding, and with the copy path
    (`VideoConfig.context_copy`) + an embedding of the current frame's code in the same cell (K rows)."""

    def __init__(self, num_classes: int, grid: int, n_embd: int, context_copy: bool = False):
        super().__init__()
        self.emb = nn.Embedding(num_classes, n_embd)
        self.height_emb = nn.Embedding(grid, n_embd)
        self.width_emb = nn.Embedding(grid, n_embd)
        self.copy_emb = nn.Embedding(num_classes - 1, n_embd) if context_copy else None

    def forward(self, x, current=None):  # (B, L) tokens [, (B, L) current frame's codes] -> (B, L, C)
        g = self.height_emb.num_embeddings
        idx = torch.arange(g, device=x.device)
        pos = (self.height_emb(idx)[:, None, :] + self.width_emb(idx)[None, :, :]).reshape(g * g, -1)
        h = self.emb(x) + pos
        return h if self.copy_emb is None else h + self.copy_emb(current)


class Transformer(nn.Module):
    def __init__(self, cfg: VideoConfig, num_codes: int, grid: int):
        super().__init__()
        self.content_emb = ContentEmbedding(num_codes + 1, grid, cfg.n_embd, cfg.context_copy)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.to_logits = nn.Sequential(nn.LayerNorm(cfg.n_embd), nn.Linear(cfg.n_embd, num_codes))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):  # as VQ-Diffusion's Text2ImageTransformer
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            m.bias.data.zero_()
            m.weight.data.fill_(1.0)

    def forward(self, x_t, t, cond: "Condition"):  # (B, L) tokens, (B,), the context -> logits (B, K, L)
        h = self.content_emb(x_t, cond.current)
        for block, kv in zip(self.blocks, cond.kv):
            h = block(h, t, kv)
        return self.to_logits(h).transpose(1, 2)


@dataclass
class Condition:
    """What the network needs of the context, computed once per chain (it depends on neither x_t nor t):
    per-block cross-attention keys/values, and the current frame's codes (B, L) for the copy path (or None)."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    current: torch.Tensor | None


class ConditionEmbedding(nn.Module):
    """Context token ids (B, F*L) -> (B, F*L, condition_dim).

    "upstream": a plain N(0,1) lookup that upstream never trains (frozen here), no frame or position information.
    "learned": trained lookup + frame embedding + grid-position embedding.
    """

    def __init__(self, cfg: VideoConfig, num_codes: int, num_tokens: int):
        super().__init__()
        self.learned = cfg.context_embedding == "learned"
        # default init N(0, 1), as upstream; with context_padding "token" the extra last row is [PAD]
        self.emb = nn.Embedding(num_codes + (cfg.context_padding == "token"), cfg.condition_dim)
        if self.learned:
            self.frame_emb = nn.Embedding(cfg.num_cond_frames, cfg.condition_dim)
            self.pos_emb = nn.Embedding(num_tokens, cfg.condition_dim)
            nn.init.normal_(self.frame_emb.weight, std=0.02)
            nn.init.normal_(self.pos_emb.weight, std=0.02)
        else:
            self.emb.weight.requires_grad_(False)
        self.num_tokens = num_tokens

    def forward(self, cond):
        e = self.emb(cond)
        if not self.learned:
            return e.float()
        s = cond.shape[1]
        idx = torch.arange(s, device=cond.device)
        return e + self.frame_emb(idx // self.num_tokens) + self.pos_emb(idx % self.num_tokens)


class VideoModel(nn.Module):
    """The upstream `DiffusionTransformer`: condition embedding, transformer, noise schedule and diffusion math."""

    def __init__(self, cfg: VideoConfig, num_codes: int, grid: int):
        super().__init__()
        self.config = cfg
        self.num_codes = num_codes
        self.num_classes = num_codes + 1  # + [MASK]
        self.mask_id = num_codes
        self.pad_id = num_codes if cfg.context_padding == "token" else None  # context id of "before the start"
        self.num_tokens = grid * grid
        self.num_timesteps = cfg.diffusion_steps
        self.condition_emb = ConditionEmbedding(cfg, num_codes, self.num_tokens)
        self.transformer = Transformer(cfg, num_codes, grid)

        at, bt, ct, att, btt, ctt = (torch.tensor(a, dtype=torch.float64)
                                     for a in alpha_schedule(cfg.diffusion_steps, num_codes))
        log_ct, log_cumprod_ct = torch.log(ct), torch.log(ctt)
        for name, value in [("log_at", torch.log(at)), ("log_bt", torch.log(bt)), ("log_ct", log_ct),
                            ("log_cumprod_at", torch.log(att)), ("log_cumprod_bt", torch.log(btt)),
                            ("log_cumprod_ct", log_cumprod_ct), ("log_1_min_ct", log_1_min_a(log_ct)),
                            ("log_1_min_cumprod_ct", log_1_min_a(log_cumprod_ct))]:
            self.register_buffer(name, value.float())
        # training statistics for importance sampling of t (upstream: EMA of L_t^2 and visit counts)
        self.register_buffer("Lt_history", torch.zeros(cfg.diffusion_steps))
        self.register_buffer("Lt_count", torch.zeros(cfg.diffusion_steps))

    # ----------------------------------------------------------------------------------------------- network
    def condition(self, cond_tokens: torch.Tensor) -> Condition:
        """(B, F*L) context token ids, oldest frame first -> the `Condition` every network evaluation of a chain
        shares: cross-attention keys/values of every block, and the current (last) frame's codes if copied."""
        emb = self.condition_emb(cond_tokens)  # (B, F*L, condition_dim)
        kv = [block.attn2.kv(emb) for block in self.transformer.blocks]
        return Condition(kv, cond_tokens[:, -self.num_tokens:] if self.config.context_copy else None)

    def predict_start(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        """log p(x0 | x_t, context): (B, L) tokens, (B,) steps -> (B, K+1, L), [MASK] row at -70, clamped [-70, 0]."""
        logits = self.transformer(x_t, t, cond)
        log_pred = F.log_softmax(logits.double(), dim=1).float()
        mask_row = torch.full_like(log_pred[:, :1], LOG_FLOOR)
        return torch.cat((log_pred, mask_row), dim=1).clamp(LOG_FLOOR, 0)

    # ------------------------------------------------------------------------------------------ diffusion math
    # All distributions are log-probabilities over the class dim, shape (B, K+1, L); row K is [MASK].
    # For x_0 = code k, q(x_t | x_0) puts abar_t + bbar_t on k, bbar_t on every other code and cbar_t on [MASK]
    # (`q_pred`); the one step q(x_t | x_{t-1}) is the same with a_t, b_t, c_t. A [MASK] stays [MASK]: its mask
    # row carries log(1 - c) (`log_1_min_ct`), and `q_posterior` handles masked x_t positions separately.
    def q_pred_one_timestep(self, log_x_t, t):  # q(x_t | x_{t-1}) for the observed x_t, as a function of x_{t-1}
        log_at, log_bt = _extract(self.log_at, t), _extract(self.log_bt, t)
        log_ct, log_1_min_ct = _extract(self.log_ct, t), _extract(self.log_1_min_ct, t)
        return torch.cat([log_add_exp(log_x_t[:, :-1] + log_at, log_bt),
                          log_add_exp(log_x_t[:, -1:] + log_1_min_ct, log_ct)], dim=1)

    def q_pred(self, log_x_start, t):  # q(x_t | x_0); t = -1 wraps to the identity entry at index T
        t = (t + (self.num_timesteps + 1)) % (self.num_timesteps + 1)
        log_cumprod_at, log_cumprod_bt = _extract(self.log_cumprod_at, t), _extract(self.log_cumprod_bt, t)
        log_cumprod_ct = _extract(self.log_cumprod_ct, t)
        log_1_min_cumprod_ct = _extract(self.log_1_min_cumprod_ct, t)
        return torch.cat([log_add_exp(log_x_start[:, :-1] + log_cumprod_at, log_cumprod_bt),
                          log_add_exp(log_x_start[:, -1:] + log_1_min_cumprod_ct, log_cumprod_ct)], dim=1)

    def q_posterior(self, log_x_start, x_t, t):
        """q(x_{t-1} | x_t, x0) marginalised over log_x_start (a distribution over x0), exactly as VQ-Diffusion.

        Bayes: q(x_{t-1} | x_t, x0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x0). With p(x0) = exp(log_x_start):
            sum_x0 p(x0) q(x_{t-1} | x_t, x0) = q(x_t | x_{t-1}) * sum_x0 [p(x0) / q(x_t | x0)] q(x_{t-1} | x0)
        `log_qt` = log q(x_t | x0) for every x0 (masked positions: cbar_t for any x0), `log_qt_one` =
        log q(x_t | x_{t-1}) for every x_{t-1} (masked positions: c_t, and 1 from [MASK]); `q` = p(x0) / q(x_t|x0),
        normalised (its log-normaliser added back at the end), pushed through q(x_{t-1} | x0) by `q_pred(q, t-1)`.

        x_t is given as tokens (B, L): q(x_t | .) then takes one of three values per (batch row, position), "hot"
        where the class is x_t's code, "cold" for every other code, or the [MASK] value, so `log_qt` and
        `log_qt_one` are each one select over (B, K, L) between (B, 1, 1)-sized constants. The constants are
        upstream's formula (`q_pred` of a log one-hot x_t) applied to the one-hot's two values log 1 and log 1e-30,
        so the result is bit for bit upstream's; only the dense passes are fewer (tests/test_scorer_consistency.py).
        """
        k = self.num_classes - 1
        mask = (x_t == self.mask_id).unsqueeze(1)  # (B, 1, L)
        hot = torch.arange(k, device=x_t.device).view(1, k, 1) == x_t.unsqueeze(1)  # (B, K, L): class == x_t
        log_one = torch.zeros(len(x_t), 1, 1, dtype=log_x_start.dtype, device=log_x_start.device)
        log_zero = torch.log(log_one + 1.0e-30)  # the log one-hot's "0" (index_to_log_onehot)

        def hot_cold(log_a, log_b):  # log_add_exp(log onehot + log_a, log_b) at the one-hot's two values
            return log_add_exp(log_one + log_a, log_b), log_add_exp(log_zero + log_a, log_b)

        qt_hot, qt_cold = hot_cold(_extract(self.log_cumprod_at, t), _extract(self.log_cumprod_bt, t))
        log_qt = torch.where(hot, qt_hot, torch.where(mask, _extract(self.log_cumprod_ct, t), qt_cold))  # (B, K, L)

        step_hot, step_cold = hot_cold(_extract(self.log_at, t), _extract(self.log_bt, t))
        log_qt_one = torch.cat((torch.where(hot, step_hot, torch.where(mask, _extract(self.log_ct, t), step_cold)),
                                torch.where(mask, log_one, log_zero)), dim=1)  # (B, K+1, L)

        q = torch.cat((log_x_start[:, :-1] - log_qt, log_zero.expand(-1, -1, x_t.shape[1])), dim=1)
        q_log_sum_exp = torch.logsumexp(q, dim=1, keepdim=True)
        q = q - q_log_sum_exp
        out = self.q_pred(q, t - 1) + log_qt_one + q_log_sum_exp
        return out.clamp(LOG_FLOOR, 0)

    def log_sample(self, log_probs, uniforms=None):
        """Gumbel-max sample (B, K+1, L) -> tokens (B, L); uniforms=None means argmax (upstream `noise: false`)."""
        if uniforms is None:
            return log_probs.argmax(1)
        gumbel = -torch.log(-torch.log(uniforms + 1e-30) + 1e-30)
        return (gumbel + log_probs).argmax(1)

    # ------------------------------------------------------------------------------------------------ training
    def sample_time(self, b: int, device, generator=None):
        """t ~ sqrt(EMA L_t^2) once every step was seen more than 10 times, uniform before (upstream)."""
        if (self.Lt_count > 10).all():
            lt_sqrt = torch.sqrt(self.Lt_history + 1e-10) + 0.0001
            lt_sqrt[0] = lt_sqrt[1]  # decoder term gets the weight of L1
            pt_all = lt_sqrt / lt_sqrt.sum()
            t = torch.multinomial(pt_all.to(_device(generator, device)), b, replacement=True, generator=generator)
            t = t.to(device)
            return t, pt_all.gather(0, t)
        t = torch.randint(0, self.num_timesteps, (b,), generator=generator, device=_device(generator, device))
        t = t.to(device)
        return t, torch.full((b,), 1.0 / self.num_timesteps, device=device)

    def training_loss(self, x0_tokens: torch.Tensor, cond_tokens: torch.Tensor, generator=None):
        """Upstream vb_stochastic loss per token: (B, L) target tokens, (B, F*L) context tokens -> (loss, metrics).

        KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) (decoder NLL at t=0) / p_t, importance-sampled t after warm-up,
        + auxiliary KL(x0 || x0_pred) * weight * (1 + (1 - t/T)) / p_t; divided by B * L.
        """
        b, n = x0_tokens.shape
        device = x0_tokens.device
        t, pt = self.sample_time(b, device, generator)
        log_x0 = index_to_log_onehot(x0_tokens, self.num_classes)
        u = torch.rand(log_x0.shape, generator=generator, device=_device(generator, device)).to(device)
        x_t = self.log_sample(self.q_pred(log_x0, t), u)  # q(x_t | x0)

        log_x0_recon = self.predict_start(x_t, t, self.condition(cond_tokens))
        log_model_prob = self.q_posterior(log_x0_recon, x_t, t)
        log_true_prob = self.q_posterior(log_x0, x_t, t)

        kl = multinomial_kl(log_true_prob, log_model_prob).sum(1)  # mask_weight [1, 1]
        decoder_nll = -log_categorical(log_x0, log_model_prob).sum(1)
        is_t0 = (t == 0).float()
        kl_loss = is_t0 * decoder_nll + (1.0 - is_t0) * kl

        with torch.no_grad():  # importance-sampling statistics
            new_hist = 0.1 * kl_loss.pow(2) + 0.9 * self.Lt_history.gather(0, t)
            self.Lt_history.scatter_(0, t, new_hist)
            self.Lt_count.scatter_add_(0, t, torch.ones_like(new_hist))

        loss = kl_loss / pt
        aux = torch.zeros_like(loss)
        if self.config.auxiliary_loss_weight:
            kl_aux = multinomial_kl(log_x0[:, :-1], log_x0_recon[:, :-1]).sum(1)
            kl_aux = is_t0 * decoder_nll + (1.0 - is_t0) * kl_aux
            weight = (1 - t / self.num_timesteps) + 1.0 if self.config.adaptive_auxiliary_loss else 1.0
            aux = weight * self.config.auxiliary_loss_weight * kl_aux / pt
        total = (loss + aux).sum() / (b * n)
        with torch.no_grad():
            acc = (log_x0_recon.argmax(1) == x0_tokens).float().mean()
        metrics = {"loss": float(total.detach()), "kl": float(kl_loss.detach().mean()) / n,
                   "aux": float(aux.detach().mean()) / n, "x0_accuracy": float(acc)}
        return total, metrics
