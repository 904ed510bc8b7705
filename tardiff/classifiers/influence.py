"""The exact influence gradient of the guidance GRU, derived by hand (the guidance's cheap path).

:func:`gru_influence_input_grad` gives ``grad_x [G . grad_phi sum_i l_i]`` of a
:class:`~tardiff.classifiers.networks.GRUNet` without autograd (forward-over-reverse written
out), so it runs on every device, cuDNN included; :class:`GRUNet` calls it from
``influence_input_grad``. Its finite-difference and double-backward checks are in the tests.

Layout: every per-step quantity is held step-major, ``(T, D, B, .)`` with the steps of each
direction in the order that direction reads them (the reverse direction's time axis flipped).
A step is then one contiguous slice, the recurrences write their steps into preallocated
buffers (no stacking), and the elementwise work over all steps runs on contiguous tensors:
on a CPU, memory traffic rather than arithmetic is what this computation costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tardiff.classifiers.networks import GRUNet

__all__ = ["gru_influence_input_grad"]


def _with_identity(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """(D, 3H, H) recurrent weights (parts r, z, n) with an identity block appended: (D, 4H, H).

    A state times its transpose gives ``(W_r v, W_z v, W_n v, v)``, the four terms of a step of
    the linearised recurrence, in one product.
    """
    n_dir = w.shape[0]
    eye = torch.eye(hidden, dtype=w.dtype, device=w.device).expand(n_dir, hidden, hidden)
    return torch.cat([w, eye], dim=1)


def _linear_sweep(forcing: torch.Tensor, coef: torch.Tensor, w4: torch.Tensor, out: torch.Tensor, *,
                  transpose: bool) -> torch.Tensor:
    """Solve the linearised GRU recurrence over the steps (dim 0) of ``forcing`` (T, D, B, H) into ``out``.

    ``coef`` (T, D, B, 4, H) holds ``c_r, c_z, c_n, z`` of every step and ``w4`` is
    :func:`_with_identity`'s (D, 4H, H), so that the Jacobian of step s is
    ``J_s = sum_k diag(c_k,s) W_k + diag(z_s)``. Forward (``transpose=False``):
    ``v_s = J_s v_{s-1} + forcing_s`` from ``v_{-1} = 0`` (four operators per step); backward
    (``transpose=True``): ``v_s = J_{s+1}^T v_{s+1} + forcing_s`` from ``v_T = 0`` (two). Each
    step is written into its slice of ``out`` (T, D, B, H; every step slice contiguous).
    """
    steps, n_dir, batch, hidden = forcing.shape
    if not transpose:
        w4t = w4.transpose(1, 2)  # (D, H, 4H)
        v = out[0].copy_(forcing[0])
        for s in range(1, steps):
            m = torch.bmm(v, w4t).view(n_dir, batch, 4, hidden)  # W_r v, W_z v, W_n v, v
            v = torch.add(forcing[s], m.mul_(coef[s]).sum(dim=2), out=out[s])
    else:
        v = out[steps - 1].copy_(forcing[steps - 1])
        for s in range(steps - 2, -1, -1):
            u = (coef[s + 1] * v[:, :, None, :]).view(n_dir, batch, 4 * hidden)  # c_r v, c_z v, c_n v, z v
            v = torch.baddbmm(forcing[s], u, w4, out=out[s])
    return out


#: Steps per block of the elementwise work over all steps, on a CPU: a block's temporaries stay in
#: cache. Measured on a 2-core EPYC: a chain of elementwise operations on (48, 2, 256, 32) tensors ran
#: 1.5x faster in blocks of 8 steps, and the cpu bench's guidance call 8% faster (388 against 421 ms,
#: the best of 6 alternating calls). Other devices take all steps at once: fewer kernels.
CPU_STEP_BLOCK = 8


def _step_blocks(steps: int, device: torch.device) -> list[slice]:
    size = CPU_STEP_BLOCK if device.type == "cpu" else steps
    return [slice(t, min(t + size, steps)) for t in range(0, steps, size)]


def _gate_derivatives(RZ: torch.Tensor, N: torch.Tensor, Hprev: torch.Tensor, hidden: int):
    """For steps of one block: sigma' of r and z, 1 - z, tanh' = 1 - n^2, and h_{s-1} - n (fresh tensors,
    which the coefficients' tangents then update in place)."""
    RZd = torch.sub(1, RZ).mul_(RZ)
    A = torch.sub(1, RZ[..., hidden:])
    Bn = torch.addcmul(N.new_ones(()), N, N, value=-1)
    return RZd, A, Bn, Hprev - N


def _to_steps(seq: torch.Tensor, n_dir: int) -> torch.Tensor:
    """(T, B, D*G) in time order -> (T, D, B, G) in each direction's step order (the reverse one flipped)."""
    steps, batch, _ = seq.shape
    per_dir = seq.view(steps, batch, n_dir, -1).transpose(1, 2)
    return torch.stack([per_dir[:, 0], per_dir[:, 1].flip(0)], dim=1) if n_dir == 2 else per_dir


def _to_time(steps: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_to_steps`: (T, D, B, G) -> (T, B, D*G)."""
    if steps.shape[1] == 2:
        return torch.stack([steps[:, 0], steps[:, 1].flip(0)], dim=2).flatten(2)
    return steps[:, 0]


def _project_in(seq: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n_dir: int,
                plus: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``seq @ W_d^T + b_d`` (``+ seq2 @ W2_d^T`` with ``plus=(seq2, W2)``) for every direction d:
    (T, B, I) in time order -> (T, D, B, G) in step order.

    One matrix product per term over all steps and both directions, then one reordering copy.
    """
    steps, batch, width = seq.shape
    out = torch.addmm(bias.reshape(-1), seq.reshape(steps * batch, width), weight.reshape(-1, width).t())
    if plus is not None:
        seq2, weight2 = plus
        out.addmm_(seq2.reshape(steps * batch, -1), weight2.reshape(-1, seq2.shape[-1]).t())
    return _to_steps(out.view(steps, batch, -1), n_dir)


def _project_out(*terms: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``sum_d sum_k grads_k,d @ W_k,d`` back in time order, for ``terms`` of (grads, W):
    (T, D, B, G) in step order and (D, G, I) -> (T, B, I). Summed in step order, reordered once."""
    per_dir = None
    for grads, weight in terms:
        term = torch.matmul(grads, weight)  # (T, D, B, I)
        per_dir = term if per_dir is None else per_dir.add_(term)
    return per_dir[:, 0] + per_dir[:, 1].flip(0) if per_dir.shape[1] == 2 else per_dir[:, 0]


def gru_influence_input_grad(net: "GRUNet", tangents: dict[str, torch.Tensor], x: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor:
    """``grad_x [G . grad_phi sum_i l_i]`` of a :class:`GRUNet` in eval mode, derived by hand.

    The same numbers as the double backward through :class:`CellGRU` (tested to a relative
    1e-5 in float32 and 1e-10 in float64), at a fraction of the operators: forward-over-reverse
    written out. Since ``grad_x (G . grad_phi L) = D_phi[grad_x L](G)``, it runs the GRU once
    (five operators per step), the tangent of its states along ``G``, the adjoint of the
    states, and the tangent of the adjoint. The last three are linear recurrences whose
    coefficients come from the first pass, computed for all steps at once; each costs two or
    four operators per step (:func:`_linear_sweep`). No autograd, so no cuDNN RNN kernel: it runs
    on every device. ``tangents`` are ``G`` cut per parameter (missing names count as zero);
    the loss is the binary cross-entropy of the single logit.
    """
    gru = net.gru
    n_dir, hidden, layers = (2 if gru.bidirectional else 1), gru.hidden_size, gru.num_layers
    batch, steps, _ = x.shape
    H, H2 = hidden, 2 * hidden
    params = dict(net.named_parameters())

    def tan(name):
        t = tangents.get(name)
        return torch.zeros_like(params[name]) if t is None else t

    def stacked(kind, layer, tangent=False):
        sfx = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if n_dir == 2 else [])
        get = tan if tangent else (lambda n: params[n])
        return torch.stack([get(f"gru.{kind}{s}") for s in sfx])

    def states():  # (T + 1, D, B, H) zeros: step s of a recurrence goes to [s + 1], so [:-1] is "the step before"
        return x.new_zeros((steps + 1, n_dir, batch, hidden))

    layer_in, layer_in_dot = x.transpose(0, 1), None  # time-major (T, B, I)
    blocks = _step_blocks(steps, x.device)
    saved = []
    # ---- the GRU and the tangent of its states, layer by layer. Elementwise work over all steps
    # updates its operands in place where they are not needed again: fresh large tensors cost a CPU
    # more than the arithmetic does.
    for layer in range(layers):
        w_ih, w_hh = stacked("weight_ih", layer), stacked("weight_hh", layer)
        b_ih, b_hh = stacked("bias_ih", layer), stacked("bias_hh", layer)
        gi = _project_in(layer_in, w_ih, b_ih, n_dir)  # (T, D, B, 3H)
        # pre-activations of r, z with their biases, and b_hn: one baddbmm per step gives a_r, a_z, gh_n
        pre = gi.clone()
        pre[..., :H2] += b_hh[:, None, :H2]
        pre[..., H2:] = b_hh[:, None, H2:]
        w_hh_t = w_hh.transpose(1, 2)
        gates = x.new_empty((steps, n_dir, batch, 3 * hidden))  # a_r, a_z, gh_n of every step
        RZ = x.new_empty((steps, n_dir, batch, H2))
        N = x.new_empty((steps, n_dir, batch, hidden))
        h_all = states()
        for s in range(steps):
            a = torch.baddbmm(pre[s], h_all[s], w_hh_t, out=gates[s])
            rz = torch.sigmoid(a[..., :H2], out=RZ[s])
            n = torch.tanh(torch.addcmul(gi[s, ..., H2:], rz[..., :H], a[..., H2:]), out=N[s])
            torch.lerp(n, h_all[s], rz[..., H:], out=h_all[s + 1])  # (1 - z) n + z h
        Hs, Hprev, GHn = h_all[1:], h_all[:-1], gates[..., H2:]
        w4 = _with_identity(w_hh, hidden)
        # tangents along G of the gate inputs: gi (weights, biases and the layer input) and gh (weights, bias)
        w_ih_d, w_hh_d = stacked("weight_ih", layer, True), stacked("weight_hh", layer, True)
        b_ih_d, b_hh_d = stacked("bias_ih", layer, True), stacked("bias_hh", layer, True)
        gi_dot = _project_in(layer_in, w_ih_d, b_ih_d, n_dir,
                             plus=None if layer_in_dot is None else (layer_in_dot, w_ih))
        gh = torch.matmul(Hprev, w_hh_d.transpose(1, 2)).add_(b_hh_d[:, None, :])  # gh_phi: (T, D, B, 3H)
        # coefficients of the step Jacobian dh_s = sum_k c_k d(gh_k) + z dh_{s-1}, c_in = dh_s/d(gi_n),
        # and the forcing e of the states' tangent, block by block of steps
        # c_in, c_r, c_z, c_n, z: [0:3] multiply the gate inputs gi (parts n, r, z), [1:4] the recurrent
        # ones gh (r, z, n), and [1:5] are the sweeps' step Jacobian; each a contiguous run of parts
        parts = x.new_empty((steps, n_dir, batch, 5, hidden))
        e = x.new_empty((steps, n_dir, batch, hidden))
        derivatives = [_gate_derivatives(RZ[b], N[b], Hprev[b], H) for b in blocks]  # kept for the tangents
        for b, (RZd, A, Bn, HmN) in zip(blocks, derivatives):
            c_in, c_r, c_z, c_n, z_part = parts[b].unbind(dim=-2)
            torch.mul(A, Bn, out=c_in)
            torch.mul(c_in, RZ[b, ..., :H], out=c_n)
            torch.mul(c_in, GHn[b], out=c_r).mul_(RZd[..., :H])
            torch.mul(HmN, RZd[..., H:], out=c_z)
            z_part.copy_(RZ[b, ..., H:])
            rz_in = torch.add(gi_dot[b, ..., :H2], gh[b, ..., :H2])
            torch.mul(c_r, rz_in[..., :H], out=e[b]).addcmul_(c_z, rz_in[..., H:])
            e[b].addcmul_(c_in, gi_dot[b, ..., H2:]).addcmul_(c_n, gh[b, ..., H2:])
        hdot_all = states()
        _linear_sweep(e, parts[..., 1:, :], w4, hdot_all[1:], transpose=False)
        Hdot, Hprev_dot = hdot_all[1:], hdot_all[:-1]
        gh_dot = gh.add_(torch.matmul(Hprev_dot, w_hh_t))  # gh_phi + W_hh h'_{s-1}
        # the coefficients' tangents, in the same layout
        parts_dot = x.new_empty(parts.shape)
        for b, (RZd, A, Bn, HmN) in zip(blocks, derivatives):
            R, GHn_b, gi_dot_b, gh_dot_b = RZ[b, ..., :H], GHn[b], gi_dot[b], gh_dot[b]
            c_in, c_r, c_z, c_n, z_part = parts[b].unbind(dim=-2)
            rz_dot = torch.add(gi_dot_b[..., :H2], gh_dot_b[..., :H2]).mul_(RZd)
            r_dot, z_dot = rz_dot[..., :H], rz_dot[..., H:]
            n_dot = torch.mul(r_dot, GHn_b).add_(gi_dot_b[..., H2:]).addcmul_(R, gh_dot_b[..., H2:]).mul_(Bn)
            cin_dot, cr_dot, cz_dot, cn_dot, z_dot_part = parts_dot[b].unbind(dim=-2)
            torch.mul(N[b], n_dot, out=cin_dot).mul_(A).mul_(-2).addcmul_(z_dot, Bn, value=-1)  # -2 n n'(1-z) - z'(1-n^2)
            one_minus_2rz = torch.mul(RZ[b], -2).add_(1)  # sigma''/sigma' of r and z
            torch.mul(cin_dot, GHn_b, out=cr_dot).addcmul_(c_in, gh_dot_b[..., H2:]).mul_(RZd[..., :H])
            cr_dot.addcmul_(torch.mul(c_in, GHn_b).mul_(r_dot), one_minus_2rz[..., :H])
            torch.sub(Hprev_dot[b], n_dot, out=cz_dot).mul_(RZd[..., H:]).addcmul_(HmN.mul_(z_dot), one_minus_2rz[..., H:])
            torch.mul(cin_dot, R, out=cn_dot).addcmul_(c_in, r_dot)
            z_dot_part.copy_(z_dot)
        n_first = lambda w: torch.cat([w[:, H2:], w[:, :H2]], dim=1)  # noqa: E731  rows n, r, z, as parts[0:3]
        saved.append(dict(parts=parts, parts_dot=parts_dot, w4=w4, w_hh_d=w_hh_d, w_ih=n_first(w_ih),
                          w_ih_d=n_first(w_ih_d)))
        if layer + 1 < layers or net.pooling != "last":  # the next layer's input, or the mean pooling's
            layer_in, layer_in_dot = _to_time(Hs), _to_time(Hdot)

    # ---- the head and the loss: L = sum_i BCE(logit_i, y_i)
    w, b = params["head.weight"][0], params["head.bias"][0]
    w_d, b_d = tan("head.weight")[0], tan("head.bias")[0]
    if net.pooling == "last":  # the final state of each direction, (D, B, H) -> (B, D*H)
        pooled, pooled_dot = Hs[-1].transpose(0, 1).reshape(batch, -1), Hdot[-1].transpose(0, 1).reshape(batch, -1)
    else:  # a mean over time is a mean over each direction's steps, in whichever order
        pooled, pooled_dot = layer_in.mean(dim=0), layer_in_dot.mean(dim=0)
    logit = pooled @ w + b
    logit_dot = pooled @ w_d + pooled_dot @ w + b_d
    p = torch.sigmoid(logit)
    dl = p - y.to(p.dtype)  # dL/dlogit
    dl_dot = p * (1 - p) * logit_dot
    g_pooled = dl[:, None] * w  # dL/dpooled (B, D*H) and its tangent
    g_pooled_dot = dl_dot[:, None] * w + dl[:, None] * w_d
    per_state = lambda g: g.view(batch, n_dir, hidden).transpose(0, 1)  # noqa: E731  (B, D*H) -> (D, B, H)
    o, o_dot = x.new_zeros((steps, n_dir, batch, hidden)), x.new_zeros((steps, n_dir, batch, hidden))
    if net.pooling == "last":
        o[-1], o_dot[-1] = per_state(g_pooled), per_state(g_pooled_dot)
    else:
        o[:], o_dot[:] = per_state(g_pooled / steps), per_state(g_pooled_dot / steps)

    # ---- the adjoint of the states and its tangent, layer by layer from the top
    for layer in reversed(range(layers)):
        sv = saved[layer]
        parts, parts_dot, w4 = sv["parts"], sv["parts_dot"], sv["w4"]
        lam = _linear_sweep(o, parts[..., 1:, :], w4, torch.empty_like(o), transpose=True)  # dL/dh_s
        # tangent: lam_dot_s = o_dot_s + J_{s+1}^T lam_dot_{s+1} + Jdot_{s+1}^T lam_{s+1}, where
        # Jdot^T lam = sum_k Wdot_k^T (c_k lam) + sum_k W_k^T (cdot_k lam) + zdot lam
        by_part = parts[..., :4, :] * lam[..., None, :]  # (T, D, B, 4, H): c_k lam (z lam is not needed)
        by_part_dot = parts_dot * lam[..., None, :]  # cdot_k lam
        jdot = torch.matmul(by_part[..., 1:4, :].flatten(-2), sv["w_hh_d"])
        jdot.add_(torch.matmul(by_part_dot[..., 1:, :].flatten(-2), w4))
        forcing = o_dot.clone()
        forcing[:-1] += jdot[1:]
        lam_dot = _linear_sweep(forcing, parts[..., 1:, :], w4, torch.empty_like(o), transpose=True)
        # gradient and its tangent w.r.t. the layer input: W_ih^T (dh/dgi lam), dh/dgi = (c_r, c_z, c_in)
        gi_adj = by_part[..., :3, :].flatten(-2)  # (T, D, B, 3H): dL/dgi, parts n, r, z
        gi_adj_dot = by_part_dot[..., :3, :].addcmul_(parts[..., :3, :], lam_dot[..., None, :]).flatten(-2)
        w_ih, w_ih_d = sv["w_ih"], sv["w_ih_d"]
        d_in_dot = _project_out((gi_adj, w_ih_d), (gi_adj_dot, w_ih))
        if layer == 0:
            return d_in_dot.transpose(0, 1)
        d_in = _project_out((gi_adj, w_ih))
        o, o_dot = _to_steps(d_in, n_dir).contiguous(), _to_steps(d_in_dot, n_dir).contiguous()
    raise AssertionError("unreachable")
