"""A label-conditional 1-D UNet over time: the denoiser of TarDiff.

The network maps a noisy batch x_t (B, T, F), its timesteps t (B,) and labels y (B,) to
the predicted noise (B, T, F). Features are channels and convolutions run along time.
Each level holds residual blocks (GroupNorm, SiLU, convolution; the embedding of t plus
the embedding of y modulates each block by a scale and a shift), self-attention at the
lower resolutions, and a stride-2 convolution down to the next level; the decoder mirrors
it with skip connections. Any sequence length works: the input is zero-padded at the end
to a multiple of 2 ** (levels - 1) and the output cropped back.

Optionally (``UNetConfig.level_skip``, on at the smoke and cpu scales, off at paper scale
as in TarDiff) a gated linear path adds ``a(t, y) * (x - level) + b(t, y) * level`` to the
output, ``level`` being each stay's time-mean of each feature and ``a``, ``b`` per-feature
gates read from the time/label embedding (zero at initialisation). At the noisiest steps
the noise to predict is almost x_t itself; a UNet without this path must pass x_t through
its convolutions, which a small one does poorly, and sampling divides that error by
sqrt(abar_T) = 0.025 for TarDiff's schedule (see :class:`UNetConfig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tardiff.errors import DataError, ParameterError
from tardiff.presets import Scale, seeded_global_rng, sizes


@dataclass
class UNetConfig:
    """Hyperparameters of :class:`UNet1D`.

    Attributes
    ----------
    base_channels : int
        Channels of the first level; level i has ``base_channels * channel_mults[i]``.
    channel_mults : tuple of int
        One multiplier per resolution level; each level after the first halves the length.
    n_res_blocks : int
        Residual blocks per level in the encoder (the decoder has one more per level).
    attention_levels : tuple of int
        Indices of the levels with self-attention (the lower resolutions); the middle
        block always has attention.
    attention_heads : int
        Heads of every attention block (must divide the channels where attention is used).
    dropout : float
        Dropout inside the residual blocks.
    num_classes : int
        Number of labels; index ``num_classes`` is the null (unconditional) label.
    norm_groups : int
        Upper bound on GroupNorm groups; the largest divisor of the channel count not above
        it is used, so small configurations stay valid.
    embed_mult : int
        The time/label embedding has ``embed_mult * base_channels`` dimensions.
    level_skip : bool
        Add the gated linear skip ``a(t, y) * (x_t - m) + b(t, y) * m`` to the predicted
        noise, where ``m`` is the time-mean of ``x_t`` per stay and feature (the stay's
        level) and ``a``, ``b`` are per-feature gates computed from the time/label embedding
        by one zero-initialised linear layer (so training starts from the plain UNet).
        Off by default and at paper scale (TarDiff's UNet has no such path). On at the cpu
        and smoke scales, where a 32-channel UNet trained for 1,000 steps cannot learn the
        near-identity eps ~ x_t of the noisiest steps: on PhysioNet 2012 (37 features) its
        held-out noise error at t = T - 1 was 0.217 (0.054 with 48 channels), which DDIM
        amplifies by 1 / sqrt(abar_T) = 41 into samples 25 times the real rows' norm. With
        the gated path the error is 0.002 and the samples' norm within 5% of the real one.
        The level gets its own gate because a stay's level has a far higher signal-to-noise
        ratio than its within-stay deviations, so the best linear coefficient differs: one
        gate for both left the level's noise error worse than predicting zero and the
        samples 30% too small.

    Examples
    --------
    >>> UNetConfig.preset("paper").channel_mults
    (1, 2, 4, 4)
    >>> UNetConfig(channel_mults=[1, 2], attention_levels=[1]).channel_mults  # lists (e.g. from JSON) become tuples
    (1, 2)
    """

    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    n_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)
    attention_heads: int = 4
    dropout: float = 0.0
    num_classes: int = 2
    norm_groups: int = 32
    embed_mult: int = 4
    level_skip: bool = False

    def __post_init__(self):
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        if self.base_channels < 1:
            raise ParameterError(f"base_channels must be positive, got {self.base_channels}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ParameterError(f"channel_mults must be a non-empty tuple of positive ints, got {self.channel_mults}")
        if self.n_res_blocks < 1:
            raise ParameterError(f"n_res_blocks must be >= 1, got {self.n_res_blocks}")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.channel_mults)]
        if bad:
            raise ParameterError(f"attention_levels {bad} do not exist; levels are 0..{len(self.channel_mults) - 1}")
        if self.attention_heads < 1:
            raise ParameterError(f"attention_heads must be >= 1, got {self.attention_heads}")
        for level in (*self.attention_levels, len(self.channel_mults) - 1):
            ch = self.base_channels * self.channel_mults[level]
            if ch % self.attention_heads:
                raise ParameterError(f"attention_heads={self.attention_heads} does not divide the {ch} channels "
                                     f"of level {level}; choose a divisor")
        if not 0.0 <= self.dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes < 1:
            raise ParameterError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.norm_groups < 1 or self.embed_mult < 1:
            raise ParameterError("norm_groups and embed_mult must be positive")
        if not isinstance(self.level_skip, bool):
            raise ParameterError(f"level_skip must be True or False, got {self.level_skip!r}")

    @classmethod
    def preset(cls, scale: Scale, **overrides) -> "UNetConfig":
        """The UNet of ``scale`` (:func:`tardiff.presets.sizes`): at paper scale TarDiff's backbone
        (64 channels, multipliers 1, 2, 4, 4, two residual blocks per level, attention at the
        two lowest resolutions); cpu trains in minutes on a 2-core CPU; smoke in seconds.

        Examples
        --------
        >>> UNetConfig.preset("paper").base_channels, UNetConfig.preset("smoke", base_channels=16).base_channels
        (64, 16)
        """
        return cls(**{**sizes("unet", scale), **overrides})


def _groups(channels: int, max_groups: int) -> int:
    """The largest divisor of ``channels`` that is at most ``max_groups``."""
    return max(g for g in range(1, min(channels, max_groups) + 1) if channels % g == 0)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer timesteps (B,), as in the Transformer and DDPM.

    Examples
    --------
    >>> timestep_embedding(torch.tensor([0, 5]), 6).shape
    torch.Size([2, 6])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def zeroed(module: nn.Module) -> nn.Module:
    """``module`` with every parameter set to zero (a layer that starts as a no-op: gates, last convolutions)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding applied as scale and shift after the second norm.

    ``forward(x, emb)`` runs the block on its own. :class:`UNet1D` instead passes ``affine``: the
    per-sample, per-channel weight and bias of the second GroupNorm with the embedding's
    ``(1 + scale, shift)`` folded in (``norm2(h) * (1 + scale) + shift`` is a group norm with
    weight ``gamma (1 + scale)`` and bias ``beta (1 + scale) + shift``), computed for every block
    at once (:meth:`UNet1D._modulations`), so the modulation costs no operator of its own.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, max_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch, max_groups), in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch, max_groups), out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zeroed(nn.Conv1d(out_ch, out_ch, 3, padding=1))  # the block starts as the identity
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv1d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None,
                affine: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if affine is None:
            scale, shift = self.emb(F.silu(emb))[:, :, None].chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            # The batch folded into the channels: one group norm per sample and group, with a
            # weight and bias per sample and channel (flattened (B * C,), sample-major).
            b, c, length = h.shape
            weight, bias = affine
            h = F.group_norm(h.view(1, b * c, length), b * self.norm2.num_groups, weight, bias,
                             self.norm2.eps).view(b, c, length)
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over time positions, with a residual connection.

    Written with two batched products on the (channels, time) layout the convolutions use:
    one copy puts q, k and v of every head side by side, and nothing else is transposed or
    copied (the sequences are short, at most a few dozen positions, so a fused attention
    kernel would save nothing and cost layout copies).
    """

    def __init__(self, channels: int, heads: int, max_groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels, max_groups), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, length = x.shape
        d = c // self.heads
        # (b, 3, heads, d, L) -> (b, heads, 3, d, L): one copy, then every head is a batch entry
        qkv = self.qkv(self.norm(x)).view(b, 3, self.heads, d, length).transpose(1, 2).contiguous()
        q, k, v = qkv.view(b * self.heads, 3, d, length).unbind(1)  # (b*heads, d, L) each, views
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) * d ** -0.5, dim=-1)  # (b*heads, L, L)
        h = torch.bmm(v, weights.transpose(1, 2))  # (b*heads, d, L) = (b, c, L) without a copy
        return x + self.proj(h.view(b, c, length))


class UNet1D(nn.Module):
    """Label-conditional 1-D UNet denoiser ``forward(x (B,T,F), t (B,), y (B,)) -> eps (B,T,F)``.

    Parameters
    ----------
    config : UNetConfig
        Architecture hyperparameters.
    n_features : int
        F, the number of features (input and output channels).
    seed : int or None
        Seeds the initial weights (drawn inside ``torch.random.fork_rng``, so the caller's
        global RNG is left untouched); ``None`` (default) draws them from the global RNG,
        as every torch layer does.

    Examples
    --------
    >>> net = UNet1D(UNetConfig.preset("smoke"), n_features=7)
    >>> x = torch.zeros(2, 24, 7)
    >>> net(x, torch.tensor([0, 10]), torch.tensor([0, 1])).shape
    torch.Size([2, 24, 7])
    >>> net.null_label  # the label index meaning "unconditional"
    2
    """

    def __init__(self, config: UNetConfig, n_features: int, *, seed: int | None = None):
        super().__init__()
        if n_features < 1:
            raise ParameterError(f"n_features must be positive, got {n_features}")
        if seed is None:
            self._build(config, n_features)
        else:
            # torch.nn layers initialise from the global RNG and take no generator.
            with seeded_global_rng(seed):
                self._build(config, n_features)

    def _build(self, config: UNetConfig, n_features: int) -> None:
        self.config = config
        self.n_features = int(n_features)
        c = config
        base, groups = c.base_channels, c.norm_groups
        emb_dim = c.embed_mult * base
        self.time_embed = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embed = nn.Embedding(c.num_classes + 1, emb_dim)  # last index: the null label
        self.input_conv = nn.Conv1d(self.n_features, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        ch = base
        n_levels = len(c.channel_mults)
        for level, mult in enumerate(c.channel_mults):
            out = base * mult
            for _ in range(c.n_res_blocks):
                layers = [ResBlock(ch, out, emb_dim, c.dropout, groups)]
                if level in c.attention_levels:
                    layers.append(AttentionBlock(out, c.attention_heads, groups))
                self.down.append(nn.ModuleList(layers))
                ch = out
                skip_channels.append(ch)
            if level < n_levels - 1:
                self.down.append(nn.ModuleList([nn.Conv1d(ch, ch, 3, stride=2, padding=1)]))
                skip_channels.append(ch)

        self.middle = nn.ModuleList([ResBlock(ch, ch, emb_dim, c.dropout, groups),
                                     AttentionBlock(ch, c.attention_heads, groups),
                                     ResBlock(ch, ch, emb_dim, c.dropout, groups)])

        self.up = nn.ModuleList()
        for level in reversed(range(n_levels)):
            out = base * c.channel_mults[level]
            for i in range(c.n_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), out, emb_dim, c.dropout, groups)]
                ch = out
                if level in c.attention_levels:
                    layers.append(AttentionBlock(ch, c.attention_heads, groups))
                if level > 0 and i == c.n_res_blocks:
                    layers.append(_Upsample(ch))
                self.up.append(nn.ModuleList(layers))

        self.out = nn.Sequential(nn.GroupNorm(_groups(ch, groups), ch), nn.SiLU(),
                                 zeroed(nn.Conv1d(ch, self.n_features, 3, padding=1)))
        self._multiple = 2 ** (n_levels - 1)
        # Built last, so the other layers draw the same initial weights with or without it.
        self.skip_gate = zeroed(nn.Linear(emb_dim, 2 * self.n_features)) if c.level_skip else None
        # Every residual block in the order forward runs them (the order they were registered
        # in), for the one batched embedding product of _modulations. A plain list: the blocks
        # stay registered (and named in state_dict) where they are.
        self._res_blocks = [m for m in self.modules() if isinstance(m, ResBlock)]
        one = torch.cat([torch.cat([torch.ones(b.emb.out_features // 2), torch.zeros(b.emb.out_features // 2)])
                         for b in self._res_blocks])
        self.register_buffer("_scale_one", one, persistent=False)  # the "1 +" of every block's 1 + scale
        self._emb_width = sum(b.emb.out_features // 2 for b in self._res_blocks)

    @property
    def null_label(self) -> int:
        """The label index meaning "no label" (classifier-free guidance)."""
        return self.config.num_classes

    @property
    def init_kwargs(self) -> dict:
        """Constructor arguments besides ``config`` (used to rebuild the model from a checkpoint)."""
        return {"n_features": self.n_features}

    def _modulations(self, silu_emb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every residual block's second-norm ``(weight, bias)`` per sample, in the order blocks run.

        One matrix product gives every block's ``(1 + scale, shift)`` (the blocks' ``emb``
        weights are concatenated at call time, so the parameters and their state_dict names
        stay those of the blocks); one gather puts them block after block, sample-major; one
        product folds in each ``norm2``'s own weight and bias: ``weight = gamma (1 + scale)``,
        ``bias = beta (1 + scale) + shift``. A handful of operators for all blocks, forward and
        backward, instead of a Linear and a scale-and-shift per block.
        """
        blocks = self._res_blocks
        weight = torch.cat([b.emb.weight for b in blocks])
        bias = torch.cat([b.emb.bias for b in blocks]) + self._scale_one
        mods = torch.addmm(bias, silu_emb, weight.t())  # (B, sum 2C): per block 1 + scale, then shift
        norms = torch.cat([p for b in blocks for p in (b.norm2.weight, b.norm2.bias)])  # per block gamma, beta
        take_mods, take_norms = self._gather_index(silu_emb.shape[0], silu_emb.device)
        n = take_mods.numel() // 2
        scale_shift = mods.take(take_mods)  # [1 + scale | shift], each block after block, (B, C) sample-major
        scale1, shift = scale_shift[:n], scale_shift[n:]
        gamma_beta = norms.take(take_norms).view(2, n)
        g_scale, b_scale = (scale1 * gamma_beta).unbind(0)  # gamma (1 + scale), beta (1 + scale)
        sizes = [silu_emb.shape[0] * (b.emb.out_features // 2) for b in blocks]
        return list(zip(g_scale.split(sizes), (b_scale + shift).split(sizes)))

    def _gather_index(self, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (cached per batch size and device) taking ``mods`` and the norms' parameters block-major."""
        key = (batch, str(device))
        cache = self.__dict__.setdefault("_gather_cache", {})
        if key not in cache:
            mod_idx, norm_idx = [[], []], [[], []]
            offset = 0
            for b in self._res_blocks:
                c = b.emb.out_features // 2
                rows = np.arange(batch)[:, None] * (2 * self._emb_width) + offset
                for part in (0, 1):  # 1 + scale, shift (gamma, beta)
                    mod_idx[part].append((rows + part * c + np.arange(c)[None, :]).ravel())
                    norm_idx[part].append(np.broadcast_to(offset + part * c + np.arange(c), (batch, c)).ravel())
                offset += 2 * c
            cache[key] = tuple(torch.from_numpy(np.concatenate(idx[0] + idx[1])).to(device)
                               for idx in (mod_idx, norm_idx))
        return cache[key]

    @staticmethod
    def _run(layers: nn.ModuleList, h: torch.Tensor, mods: Iterator[torch.Tensor]) -> torch.Tensor:
        for layer in layers:
            if isinstance(layer, ResBlock):
                h = layer(h, affine=next(mods))
            elif isinstance(layer, AttentionBlock):
                h = layer(h)
            else:
                h = layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise in ``x`` (B, T, F) at timesteps ``t`` (B,) for labels ``y`` (B,).

        ``y=None`` uses the null label for every sample.
        """
        if x.dim() != 3 or x.shape[-1] != self.n_features:
            raise DataError(f"UNet1D expects input (batch, time, {self.n_features}), got {tuple(x.shape)}")
        batch, length, _ = x.shape
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(batch)
        if y is None:
            y = torch.full((batch,), self.null_label, dtype=torch.long, device=x.device)
        y = torch.as_tensor(y, dtype=torch.long, device=x.device).reshape(-1).expand(batch)
        emb = self.time_embed(timestep_embedding(t, self.config.base_channels)) + self.label_embed(y)

        silu_emb = F.silu(emb)
        mods = iter(self._modulations(silu_emb))

        padded = -(-length // self._multiple) * self._multiple
        h = x.transpose(1, 2)
        if padded != length:  # pad only where the length needs it (no copy otherwise)
            h = F.pad(h, (0, padded - length))
        h = self.input_conv(h)
        skips = [h]
        for layers in self.down:
            h = self._run(layers, h, mods)
            skips.append(h)
        h = self._run(self.middle, h, mods)
        for layers in self.up:
            h = self._run(layers, torch.cat([h, skips.pop()], dim=1), mods)
        eps = self.out(h)
        if padded != length:
            eps = eps[:, :, :length]
        eps = eps.transpose(1, 2)
        if self.skip_gate is not None:
            # The gated linear path of UNetConfig.level_skip: deviations and level, one gate each.
            a, b = self.skip_gate(silu_emb)[:, None, :].chunk(2, dim=-1)
            level = x.mean(dim=1, keepdim=True)
            eps = eps + a * (x - level) + b * level
        return eps


class _Upsample(nn.Module):
    """Nearest-neighbour doubling of the length, then a convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
