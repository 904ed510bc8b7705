"""The networks: a twice-differentiable GRU, a dilated CNN and a small transformer, each (B, T, F) -> (B,) logits.

Also :func:`build_network` (config -> untrained module) and :func:`per_sample_loss`, the loss
``l`` of the TarDiff paper that training and the influence guidance share. Training lives in
:mod:`tardiff.classifiers.trainer`; the GRU's hand-derived influence gradient in
:mod:`tardiff.classifiers.influence`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tardiff.classifiers.config import ClassifierConfig
from tardiff.classifiers.influence import gru_influence_input_grad
from tardiff.errors import ParameterError

__all__ = ["CNNNet", "CellGRU", "GRUNet", "TransformerNet", "build_network", "per_sample_loss"]


class CellGRU(nn.GRU):
    """A batch-first ``torch.nn.GRU`` whose forward pass is written from matrix products.

    The parameters, their names and their initialisation are those of :class:`torch.nn.GRU`
    (``weight_ih_l0``, ``weight_hh_l0_reverse``, ...), so ``load_state_dict`` moves weights
    both ways. The default forward loops over the time steps with plain matrix products
    (gates ordered r, z, n as in PyTorch), which is twice differentiable on every device,
    unlike cuDNN's fused RNN. Inside :meth:`fused` the parent's fused kernel runs instead
    (faster; use it only where no double backward is taken).

    Examples
    --------
    >>> gru = CellGRU(7, 16, num_layers=2, bidirectional=True)
    >>> out, h_n = gru(torch.zeros(4, 24, 7))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((4, 24, 32), (4, 4, 16))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=True, batch_first=True,
                         dropout=dropout, bidirectional=bidirectional)
        self.use_fused = False

    @contextlib.contextmanager
    def fused(self) -> Iterator[None]:
        """Temporarily use PyTorch's fused GRU kernel (not twice differentiable on CUDA)."""
        previous, self.use_fused = self.use_fused, True
        try:
            yield
        finally:
            self.use_fused = previous

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None):  # noqa: D401
        """Run the GRU on ``x`` of shape (B, T, input_size).

        Returns ``(output, h_n)`` exactly as ``torch.nn.GRU(batch_first=True)``: output of shape
        (B, T, D*H) and h_n of shape (layers*D, B, H), with D = 2 if bidirectional.
        """
        if self.use_fused:
            return super().forward(x, hx)
        if x.dim() != 3:
            raise ValueError(f"CellGRU expects (B, T, F) input, got shape {tuple(x.shape)}")
        n_dir = 2 if self.bidirectional else 1
        batch, steps, _ = x.shape
        hidden = self.hidden_size
        finals = []
        layer_input = x
        for layer in range(self.num_layers):
            suffixes = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if n_dir == 2 else [])
            w_ih = torch.stack([getattr(self, "weight_ih" + s) for s in suffixes])  # (D, 3H, In)
            w_hh = torch.stack([getattr(self, "weight_hh" + s) for s in suffixes])  # (D, 3H, H)
            b_ih = torch.stack([getattr(self, "bias_ih" + s) for s in suffixes])  # (D, 3H)
            b_hh = torch.stack([getattr(self, "bias_hh" + s) for s in suffixes])
            # input projections for all steps at once: (D, B, T, 3H); the reverse direction
            # reads the series backwards, so flip its time axis once here
            gi = torch.einsum("bti,dgi->dbtg", layer_input, w_ih) + b_ih[:, None, None, :]
            if n_dir == 2:
                gi = torch.stack([gi[0], gi[1].flip(1)])
            if hx is None:
                h = layer_input.new_zeros((n_dir, batch, hidden))
            else:
                h = hx[layer * n_dir:(layer + 1) * n_dir]
            outs = []
            # unbind once: indexing gi per step would make autograd build a full-size zero
            # gradient for every step (quadratic in T)
            for gi_t in gi.unbind(2):  # gi_t: (D, B, 3H)
                gh = torch.baddbmm(b_hh[:, None, :], h, w_hh.transpose(1, 2))  # (D, B, 3H)
                i_r, i_z, i_n = gi_t.chunk(3, dim=-1)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
                outs.append(h)
            seq = torch.stack(outs, dim=2)  # (D, B, T, H), reverse direction still backwards
            if n_dir == 2:
                out = torch.cat([seq[0], seq[1].flip(1)], dim=-1)
            else:
                out = seq[0]
            finals.append(h)
            layer_input = out
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, torch.cat(finals, dim=0)


class GRUNet(nn.Module):
    """Bidirectional multi-layer GRU -> pooling -> dropout -> linear -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.gru = CellGRU(n_features, config.hidden, config.layers, bidirectional=config.bidirectional,
                           dropout=config.dropout if config.layers > 1 else 0.0)
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        n_dir = 2 if config.bidirectional else 1
        self.head = nn.Linear(n_dir * config.hidden, 1)

    @contextlib.contextmanager
    def fused(self) -> Iterator[None]:
        """Use the fused GRU kernel inside the block (training and prediction only)."""
        with self.gru.fused():
            yield

    def influence_input_grad(self, tangents: dict[str, torch.Tensor], x: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor | None:
        """``grad_x [G . grad_phi sum_i l(f(x_i), y_i)]`` by :func:`gru_influence_input_grad`.

        The cheap exact path of :class:`tardiff.guidance.InfluenceGuidance` (``similarity="dot"``);
        the network must be in eval mode. Returns None where it does not apply (a GRU given a
        non-floating input), so the caller falls back to the double backward.
        """
        if self.training or not x.is_floating_point():
            return None
        with torch.no_grad():
            return gru_influence_input_grad(self, tangents, x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h_n = self.gru(x)
        if self.pooling == "last":
            n_dir = 2 if self.gru.bidirectional else 1
            pooled = torch.cat(list(h_n[-n_dir:]), dim=-1)  # last layer, every direction
        else:
            pooled = out.mean(dim=1)
        return self.head(self.dropout(pooled)).squeeze(-1)


class CNNNet(nn.Module):
    """Residual dilated temporal convolutions -> global mean and max pooling -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        k, c = config.kernel_size, config.hidden
        self.inp = nn.Conv1d(n_features, c, k, padding=k // 2)
        self.blocks = nn.ModuleList(
            nn.Conv1d(c, c, k, padding=(k // 2) * 2 ** i, dilation=2 ** i) for i in range(config.layers)
        )
        self.norms = nn.ModuleList(nn.GroupNorm(1, c) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.transpose(1, 2))  # (B, C, T)
        for conv, norm in zip(self.blocks, self.norms):
            h = h + conv(self.dropout(F.gelu(norm(h))))
        h = F.gelu(h)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)
        return self.head(self.dropout(pooled)).squeeze(-1)


class _EncoderBlock(nn.Module):
    """Pre-norm transformer block with explicit (twice differentiable) attention."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // self.heads), dim=-1)
        mixed = (self.dropout(attn) @ v).transpose(1, 2).reshape(b, t, w)
        h = h + self.dropout(self.proj(mixed))
        return h + self.dropout(self.mlp(self.norm2(h)))


class TransformerNet(nn.Module):
    """Linear embedding + sinusoidal positions -> pre-norm encoder blocks -> mean pool -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.width = config.hidden
        self.embed = nn.Linear(n_features, config.hidden)
        self.blocks = nn.ModuleList(_EncoderBlock(config.hidden, config.heads, config.dropout)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)
        self.head = nn.Linear(config.hidden, 1)

    def _positions(self, steps: int, like: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(steps, device=like.device, dtype=like.dtype)[:, None]
        half = self.width // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=like.device, dtype=like.dtype) / max(half, 1))
        enc = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1)
        return F.pad(enc, (0, self.width - 2 * half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self._positions(x.shape[1], x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1)).squeeze(-1)


def build_network(config: ClassifierConfig, n_features: int) -> nn.Module:
    """Build the (untrained) network for ``config``: a module mapping (B, T, F) to (B,) logits.

    Examples
    --------
    >>> net = build_network(ClassifierConfig.preset("smoke", "cnn"), n_features=3)
    >>> tuple(net(torch.zeros(2, 10, 3)).shape)
    (2,)
    """
    networks = {"gru": GRUNet, "cnn": CNNNet, "transformer": TransformerNet}
    return networks[config.arch](n_features, config)


@contextlib.contextmanager
def _fast_kernels(module: nn.Module) -> Iterator[None]:
    """Use fused kernels where the network offers them (never while guidance differentiates)."""
    fused = getattr(module, "fused", None)
    with fused() if callable(fused) else contextlib.nullcontext():
        yield


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample binary cross-entropy with logits, the loss ``l`` of the TarDiff paper.

    Logits of shape (B,) or (B, 1) use the binary form; logits of shape (B, C) with C >= 2 use
    the multi-class cross entropy, so the guidance also accepts two-logit networks.

    Examples
    --------
    >>> per_sample_loss(torch.zeros(2), torch.tensor([0, 1]))
    tensor([0.6931, 0.6931])
    """
    if logits.dim() == 2 and logits.shape[-1] == 1:
        logits = logits.squeeze(-1)
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), pos_weight=pos_weight, reduction="none")
    if pos_weight is not None:
        raise ParameterError("pos_weight is only defined for one-logit (binary) networks")
    return F.cross_entropy(logits, y.long(), reduction="none")
