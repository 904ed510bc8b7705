"""The exact influence gradient of the guidance GRU, derived by hand (the guidance's cheap path).

:func:`gru_influence_input_grad` gives ``grad_x [G . grad_phi sum_i l_i]`` of a
:class:`~tardiff.classifiers.networks.GRUNet` without autograd (forward-over-reverse written
out), so it runs on every device, cuDNN included; :class:`GRUNet` calls it from
``influence_input_grad``. Its finite-difference and double-backward checks are in the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tardiff.classifiers.networks import GRUNet

__all__ = ["gru_influence_input_grad"]


def _interleave(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """(D, 3H, H) recurrent weights plus an identity block, rows ordered (unit j, part k): (D, 4H, H).

    Multiplying a state by it gives, for every hidden unit, its three gate inputs and its own
    value side by side, so a linear step ``sum_k c_k (W_k h) + z h`` is one tiny batched product.
    """
    n_dir = w.shape[0]
    eye = torch.eye(hidden, dtype=w.dtype, device=w.device).expand(n_dir, hidden, hidden)
    return torch.cat([w.view(n_dir, 3, hidden, hidden), eye[:, None]], dim=1).transpose(1, 2).reshape(
        n_dir, 4 * hidden, hidden)


def _linear_sweep(forcing: torch.Tensor, coef: torch.Tensor, w4: torch.Tensor, *, transpose: bool) -> torch.Tensor:
    """Solve the linearised GRU recurrence over the steps (dim 2) of ``forcing`` (D, B, T, H).

    ``coef`` (D, B, T, H, 4) holds ``c_r, c_z, c_n, z`` of every step, so that the Jacobian of
    step s is ``J_s = sum_k diag(c_k,s) W_k + diag(z_s)``. Forward (``transpose=False``):
    ``v_s = J_s v_{s-1} + forcing_s`` from ``v_{-1} = 0``; backward (``transpose=True``):
    ``v_s = J_{s+1}^T v_{s+1} + forcing_s`` from ``v_T = 0``. Two operators per step.
    """
    n_dir, batch, steps, hidden = forcing.shape
    forcing = forcing.permute(2, 0, 1, 3).contiguous()  # step-major, so each step's slice is contiguous
    coef = coef.permute(2, 0, 1, 3, 4).contiguous()
    out = [None] * steps
    if not transpose:
        w4t = w4.transpose(1, 2)  # (D, H, 4H)
        v = forcing[0]
        out[0] = v
        for s in range(1, steps):
            m = torch.bmm(v, w4t).view(n_dir * batch * hidden, 4, 1)  # (W_r v, W_z v, W_n v, v) per unit
            v = torch.baddbmm(forcing[s].view(-1, 1, 1), coef[s].view(-1, 1, 4), m).view(n_dir, batch, hidden)
            out[s] = v
    else:
        v = forcing[steps - 1]
        out[steps - 1] = v
        for s in range(steps - 2, -1, -1):
            u = (coef[s + 1] * v[..., None]).view(n_dir, batch, 4 * hidden)  # (c_r v, c_z v, c_n v, z v)
            v = torch.baddbmm(forcing[s], u, w4)
            out[s] = v
    return torch.stack(out, dim=2)


def _to_steps(seq: torch.Tensor, n_dir: int) -> torch.Tensor:
    """(B, T, D*H) in time order -> (D, B, T, H) in each direction's step order (reverse flipped)."""
    b, t, dh = seq.shape
    per_dir = seq.view(b, t, n_dir, dh // n_dir).permute(2, 0, 1, 3)
    return torch.stack([per_dir[0], per_dir[1].flip(1)]) if n_dir == 2 else per_dir


def _to_time(steps: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_to_steps`: (D, B, T, H) -> (B, T, D*H)."""
    if steps.shape[0] == 2:
        steps = torch.stack([steps[0], steps[1].flip(1)])
    return steps.permute(1, 2, 0, 3).reshape(steps.shape[1], steps.shape[2], -1)


def gru_influence_input_grad(net: "GRUNet", tangents: dict[str, torch.Tensor], x: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor:
    """``grad_x [G . grad_phi sum_i l_i]`` of a :class:`GRUNet` in eval mode, derived by hand.

    The same numbers as the double backward through :class:`CellGRU` (tested to a relative
    1e-5 in float32 and 1e-10 in float64), at a fraction of the operators: forward-over-reverse
    written out. Since ``grad_x (G . grad_phi L) = D_phi[grad_x L](G)``, it runs the GRU once
    (five operators per step), the tangent of its states along ``G``, the adjoint of the
    states, and the tangent of the adjoint. The last three are linear recurrences whose
    coefficients come from the first pass, computed for all steps at once; each costs two
    operators per step (:func:`_linear_sweep`). No autograd, so no cuDNN RNN kernel: it runs
    on every device. ``tangents`` are ``G`` cut per parameter (missing names count as zero);
    the loss is the binary cross-entropy of the single logit.
    """
    gru = net.gru
    n_dir, hidden, layers = (2 if gru.bidirectional else 1), gru.hidden_size, gru.num_layers
    batch, steps, _ = x.shape
    params = dict(net.named_parameters())

    def tan(name):
        t = tangents.get(name)
        return torch.zeros_like(params[name]) if t is None else t

    def stacked(kind, layer, tangent=False):
        sfx = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if n_dir == 2 else [])
        get = (lambda n: tan(n)) if tangent else (lambda n: params[n])
        return torch.stack([get(f"gru.{kind}{s}") for s in sfx])

    def flip_steps(t):  # time order -> step order for the reverse direction (dim 2 of (D, B, T, .))
        return torch.stack([t[0], t[1].flip(1)]) if n_dir == 2 else t

    layer_in, layer_in_dot = x, None
    saved = []
    # ---- the GRU and the tangent of its states, layer by layer
    for layer in range(layers):
        w_ih, w_hh = stacked("weight_ih", layer), stacked("weight_hh", layer)
        b_ih, b_hh = stacked("bias_ih", layer), stacked("bias_hh", layer)
        gi = flip_steps(torch.einsum("bti,dgi->dbtg", layer_in, w_ih) + b_ih[:, None, None, :])  # (D, B, T, 3H)
        # pre-activations of r, z with their biases, and b_hn: one baddbmm per step gives a_r, a_z, gh_n
        pre = torch.cat([gi[..., :2 * hidden] + b_hh[:, None, None, :2 * hidden],
                         b_hh[:, None, None, 2 * hidden:].expand(n_dir, batch, steps, hidden)], dim=-1)
        w_hh_t = w_hh.transpose(1, 2)
        h = x.new_zeros((n_dir, batch, hidden))
        rz_l, n_l, ghn_l, h_l = [], [], [], []
        for s in range(steps):
            a = torch.baddbmm(pre[:, :, s], h, w_hh_t)  # a_r, a_z, gh_n
            rz = torch.sigmoid(a[..., :2 * hidden])
            n = torch.tanh(torch.addcmul(gi[:, :, s, 2 * hidden:], rz[..., :hidden], a[..., 2 * hidden:]))
            h = torch.lerp(n, h, rz[..., hidden:])  # (1 - z) n + z h
            rz_l.append(rz), n_l.append(n), ghn_l.append(a[..., 2 * hidden:]), h_l.append(h)
        RZ, N, GHn, Hs = (torch.stack(v, dim=2) for v in (rz_l, n_l, ghn_l, h_l))
        R, Z = RZ[..., :hidden], RZ[..., hidden:]
        Hprev = torch.cat([x.new_zeros((n_dir, batch, 1, hidden)), Hs[:, :, :-1]], dim=2)
        # coefficients of the step Jacobian dh_s = sum_k c_k d(gh_k) + z dh_{s-1} (and c_in for gi_n)
        A, Bn, Rr, Zz = 1 - Z, 1 - N * N, R * (1 - R), Z * (1 - Z)
        c_in = A * Bn
        c_n = c_in * R
        c_r = c_in * GHn * Rr
        c_z = (Hprev - N) * Zz
        coef = torch.stack([c_r, c_z, c_n, Z], dim=-1)  # (D, B, T, H, 4)
        w4 = _interleave(w_hh, hidden)
        # tangents along G of the gate inputs: gi (weights, biases and the layer input) and gh (weights, bias)
        w_ih_d, w_hh_d = stacked("weight_ih", layer, True), stacked("weight_hh", layer, True)
        b_ih_d, b_hh_d = stacked("bias_ih", layer, True), stacked("bias_hh", layer, True)
        gi_dot = torch.einsum("bti,dgi->dbtg", layer_in, w_ih_d) + b_ih_d[:, None, None, :]
        if layer_in_dot is not None:
            gi_dot = gi_dot + torch.einsum("bti,dgi->dbtg", layer_in_dot, w_ih)
        gi_dot = flip_steps(gi_dot)
        gh_phi = (torch.bmm(Hprev.reshape(n_dir, -1, hidden), w_hh_d.transpose(1, 2)).view(n_dir, batch, steps, -1)
                  + b_hh_d[:, None, None, :])
        e = (c_r * (gi_dot[..., :hidden] + gh_phi[..., :hidden])
             + c_z * (gi_dot[..., hidden:2 * hidden] + gh_phi[..., hidden:2 * hidden])
             + c_in * gi_dot[..., 2 * hidden:] + c_n * gh_phi[..., 2 * hidden:])
        Hdot = _linear_sweep(e, coef, w4, transpose=False)
        Hprev_dot = torch.cat([x.new_zeros((n_dir, batch, 1, hidden)), Hdot[:, :, :-1]], dim=2)
        gh_dot = torch.bmm(Hprev_dot.reshape(n_dir, -1, hidden), w_hh_t).view(n_dir, batch, steps, -1) + gh_phi
        r_dot = Rr * (gi_dot[..., :hidden] + gh_dot[..., :hidden])
        z_dot = Zz * (gi_dot[..., hidden:2 * hidden] + gh_dot[..., hidden:2 * hidden])
        n_dot = Bn * (gi_dot[..., 2 * hidden:] + r_dot * GHn + R * gh_dot[..., 2 * hidden:])
        bn_dot = -2 * N * n_dot
        c_in_dot = -z_dot * Bn + A * bn_dot
        c_dot = torch.stack([
            c_in_dot * GHn * Rr + c_in * gh_dot[..., 2 * hidden:] * Rr + c_in * GHn * r_dot * (1 - 2 * R),  # c_r
            (Hprev_dot - n_dot) * Zz + (Hprev - N) * z_dot * (1 - 2 * Z),  # c_z
            c_in_dot * R + c_in * r_dot,  # c_n
            z_dot,  # z
        ], dim=-1)
        c_in_all = torch.stack([c_r, c_z, c_in], dim=-2)  # dh/dgi per part, (D, B, T, 3, H)
        c_in_all_dot = torch.stack([c_dot[..., 0], c_dot[..., 1], c_in_dot], dim=-2)
        saved.append(dict(coef=coef, c_dot=c_dot, w4=w4, w_hh=w_hh, w_ih=w_ih, w_ih_d=w_ih_d, w_hh_d=w_hh_d,
                          gin=c_in_all, gin_dot=c_in_all_dot))
        layer_in, layer_in_dot = _to_time(Hs), _to_time(Hdot)

    # ---- the head and the loss: L = sum_i BCE(logit_i, y_i)
    out, out_dot = layer_in, layer_in_dot
    w, b = params["head.weight"][0], params["head.bias"][0]
    w_d, b_d = tan("head.weight")[0], tan("head.bias")[0]
    if net.pooling == "last":
        last, last_dot = Hs[:, :, -1], Hdot[:, :, -1]  # (D, B, H) final state of each direction
        pooled = last.permute(1, 0, 2).reshape(batch, -1)
        pooled_dot = last_dot.permute(1, 0, 2).reshape(batch, -1)
    else:
        pooled, pooled_dot = out.mean(dim=1), out_dot.mean(dim=1)
    logit = pooled @ w + b
    logit_dot = pooled @ w_d + pooled_dot @ w + b_d
    p = torch.sigmoid(logit)
    dl = p - y.to(p.dtype)  # dL/dlogit
    dl_dot = p * (1 - p) * logit_dot
    g_pooled = dl[:, None] * w  # dL/dpooled (B, D*H) and its tangent
    g_pooled_dot = dl_dot[:, None] * w + dl[:, None] * w_d
    if net.pooling == "last":
        o = x.new_zeros((n_dir, batch, steps, hidden))
        o_dot = torch.zeros_like(o)
        o[:, :, -1] = g_pooled.view(batch, n_dir, hidden).transpose(0, 1)
        o_dot[:, :, -1] = g_pooled_dot.view(batch, n_dir, hidden).transpose(0, 1)
    else:
        o = _to_steps((g_pooled / steps)[:, None, :].expand(batch, steps, -1), n_dir)
        o_dot = _to_steps((g_pooled_dot / steps)[:, None, :].expand(batch, steps, -1), n_dir)

    # ---- the adjoint of the states and its tangent, layer by layer from the top
    for layer in reversed(range(layers)):
        sv = saved[layer]
        lam = _linear_sweep(o, sv["coef"], sv["w4"], transpose=True)  # dL/dh_s
        # tangent: lam_dot_s = o_dot_s + J_{s+1}^T lam_dot_{s+1} + Jdot_{s+1}^T lam_{s+1}
        u = (sv["coef"][..., :3] * lam[..., None]).transpose(-1, -2)  # (D, B, T, 3, H): c_k lam
        u_dot = (sv["c_dot"][..., :3] * lam[..., None]).transpose(-1, -2)
        jdot = (sv["c_dot"][..., 3] * lam
                + torch.bmm(u.reshape(n_dir, -1, 3 * hidden), sv["w_hh_d"]).view(n_dir, batch, steps, hidden)
                + torch.bmm(u_dot.reshape(n_dir, -1, 3 * hidden), sv["w_hh"]).view(n_dir, batch, steps, hidden))
        forcing = o_dot + torch.cat([jdot[:, :, 1:], torch.zeros_like(jdot[:, :, :1])], dim=2)
        lam_dot = _linear_sweep(forcing, sv["coef"], sv["w4"], transpose=True)
        # gradient and its tangent w.r.t. the layer input: W_ih^T (dh/dgi * lam)
        d_gi = (sv["gin"] * lam[..., None, :]).flatten(-2)  # (D, B, T, 3H)
        d_gi_dot = (sv["gin_dot"] * lam[..., None, :] + sv["gin"] * lam_dot[..., None, :]).flatten(-2)
        d_gi, d_gi_dot = flip_steps(d_gi), flip_steps(d_gi_dot)  # back to time order
        d_in = torch.einsum("dbtg,dgi->bti", d_gi, sv["w_ih"])
        d_in_dot = torch.einsum("dbtg,dgi->bti", d_gi, sv["w_ih_d"]) + torch.einsum("dbtg,dgi->bti", d_gi_dot,
                                                                                      sv["w_ih"])
        if layer == 0:
            return d_in_dot
        o, o_dot = _to_steps(d_in, n_dir), _to_steps(d_in_dot, n_dir)
    raise AssertionError("unreachable")
