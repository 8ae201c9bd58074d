"""VideoGPT video model: VIPER's reward model (Escontrela et al. 2023) as the Diffusion Reward authors ship it.

A minGPT over the VQ-GAN code vectors of a window of frames, raster order, frame after frame. With the authors'
`use_vqemb`, the input at each position is the codec's code vector (code_dim wide) projected to the width, not a
token id; the sequence starts with SOS, a zero vector, so it contributes only the projection's bias. Position j
predicts token j of the window (teacher forcing):

    x    = [SOS, e(w_0), ..., e(w_{N-2})]           (B, N, code_dim), w the window's N = frames x L token ids
    h    = tok_emb(x) + pos_emb[:N]                 (B, N, C)
    h    = h + attn(ln1(h)); h = h + mlp(ln2(h))    per block; causal attention, MLP 4C with exact GELU
    p    = softmax(head(ln_f(h)))                   (B, N, K): p[j] = p(w_j | w_<j)

Rewards (reward/scorer.py lays out the rows as upstream):
    likelihood (VIPER):  sum over the target frame's L positions of log p(w_j | w_<j)
                         = log p(f_i | f_{i-2k}, f_{i-k}), one forward pass over (f_{i-2k}, f_{i-k}, f_i).
    entropy (upstream):  minus sum over the last L positions of H(p[j]), on the window (f_{i-k}, f_i): the
                         teacher-forced per-token entropies of f_i given f_{i-k} and f_i's own earlier tokens.
                         The entropy of a whole next frame under an autoregressive model is intractable; this is
                         the authors' tractable stand-in, not a sampled next-frame entropy.
Training: cross-entropy over every position of (f_{t-2k}, f_{t-k}, f_t) (the unconditional first frame included,
as upstream), each input vector zeroed with probability 1 - pkeep.

Names equal the keys of the authors' `transformer.*` state_dict; their `attn.mask` buffers (block_size^2 floats per
layer, 105 MB each at paper size) are not stored: the causal mask is built for the sequence length in use.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .presets import VideoGPTConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: VideoGPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.key = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.query = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.value = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x):  # (B, N, C) -> (B, N, C)
        b, n, c = x.shape
        k, q, v = (f(x).view(b, n, self.n_head, -1).transpose(1, 2) for f in (self.key, self.query, self.value))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, N, N)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        att = self.attn_drop(F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, n, c)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, cfg: VideoGPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """minGPT with a linear input projection of code vectors (`use_vqemb`) and no head bias."""

    def __init__(self, cfg: VideoGPTConfig, num_codes: int, code_dim: int):
        super().__init__()
        self.tok_emb = nn.Linear(code_dim, cfg.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.block_size, cfg.n_embd))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, num_codes, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):  # minGPT's
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(mean=0.0, std=0.02)
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.bias.data.zero_()
            m.weight.data.fill_(1.0)

    def forward(self, x):  # (B, N, code_dim) input vectors -> logits (B, N, K)
        h = self.drop(self.tok_emb(x) + self.pos_emb[:, :x.shape[1]])
        return self.head(self.ln_f(self.blocks(h)))


class VideoGPT(nn.Module):
    """The authors' `VideoGPTTransformer` without its codec copy: the codec lives in the RewardModel, which hands
    this model its codebook (`use_codebook`); the code vectors are read from it, frozen."""

    def __init__(self, cfg: VideoGPTConfig, num_codes: int, grid: int, code_dim: int):
        super().__init__()
        self.config = cfg
        self.num_codes = num_codes
        self.num_tokens = grid * grid  # L
        self.pad_id = None  # rows before the episode start repeat the frame (VideoGPTConfig.context_padding)
        self.transformer = GPT(cfg, num_codes, code_dim)
        self._codebook: list[nn.Embedding] = []  # a list, so the codec's codebook is not a submodule of this one

    def use_codebook(self, codebook: nn.Embedding) -> None:
        self._codebook[:] = [codebook]

    def logits(self, window: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, N) of a window -> logits (B, N, K), position j predicting window[:, j].
        `keep` (B, N) bool zeroes the input vectors where False (training's pkeep dropout)."""
        e = self._codebook[0](window).detach()  # (B, N, code_dim)
        x = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], 1)  # [SOS, e_0 .. e_{N-2}]
        if keep is not None:
            x = x * keep.unsqueeze(-1)
        return self.transformer(x)

    def log_likelihood(self, cond_tokens: torch.Tensor, target_tokens: torch.Tensor) -> torch.Tensor:
        """log p(target | context) in nats (B,): context (B, F*L), target (B, L); one teacher-forced pass."""
        logits = self.logits(torch.cat([cond_tokens, target_tokens], 1))[:, -self.num_tokens:].float()
        return F.log_softmax(logits, -1).gather(-1, target_tokens.unsqueeze(-1)).squeeze(-1).sum(1)

    def negative_entropy(self, window: torch.Tensor) -> torch.Tensor:
        """sum_j sum_v p log p over the window's last frame (B,): (B, F*L) ids, the upstream entropy mode."""
        log_p = F.log_softmax(self.logits(window)[:, -self.num_tokens:].float(), -1)  # (B, L, K)
        return (log_p.exp() * log_p).sum((1, 2))

    def training_loss(self, x0_tokens: torch.Tensor, cond_tokens: torch.Tensor, generator=None):
        """Cross-entropy (nats per token) over every position of (context, target): (B, L), (B, F*L) ids."""
        window = torch.cat([cond_tokens, x0_tokens], 1)  # (B, N)
        keep = None
        if self.training and self.config.pkeep < 1.0:
            device = generator.device if generator is not None else window.device
            u = torch.rand(window.shape, generator=generator, device=device).to(window.device)
            keep = u < self.config.pkeep
        logits = self.logits(window, keep).float()
        loss = F.cross_entropy(logits.reshape(-1, self.num_codes), window.reshape(-1))
        with torch.no_grad():
            target = logits[:, -self.num_tokens:]
            acc = (target.argmax(-1) == x0_tokens).float().mean()
            nll = F.cross_entropy(target.reshape(-1, self.num_codes), x0_tokens.reshape(-1))
        return loss, {"loss": float(loss.detach()), "target_nll": float(nll), "x0_accuracy": float(acc)}
