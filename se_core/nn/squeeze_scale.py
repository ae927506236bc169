"""Squeeze-and-scale, ``x * excite(mean_hw(x))``, with a backward that passes over the map twice, not five times.

Why: on a CPU an SE unit's cost is not its FC layers but the passes over the N x C x H x W map.
Autograd on the plain formulation, in backward, writes ``g * s``, writes and reduces ``g * x``
for ``ds``, writes the mean's broadcast gradient ``dz / HW``, and adds the two input gradients
(on a channels_last map a slow mixed-layout add). :class:`SqueezeScale` reads g and x once to
reduce ``ds``, then reads g once to write ``dx = g * s + dz / HW`` (one ``addcmul``). The tiny
excitation (N x C matrices) is recomputed in backward from the saved z, so only x and z are
kept between the passes. ``torch.compile`` of the whole model fuses further (the trainer's
``--compile``); this is the eager path, measured in ``bench/se_train_overhead.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


class SqueezeScale(torch.autograd.Function):
    """``x * excite(mean_hw(x))`` for an average-squeeze SE unit whose ``excite`` maps N x C to N x C x 1 x 1.

    ``params`` are the tensors ``excite`` reads (passed so their gradients flow); ``excite`` is
    re-run in backward under the forward's autocast state, so it must be a pure function of
    z and ``params`` (no module hooks: the caller passes one that bypasses them).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, excite: Callable[[torch.Tensor], torch.Tensor], *params: torch.Tensor) -> torch.Tensor:
        dev = x.device.type
        ctx.autocast = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        z = x.mean((2, 3))
        ctx.excite = excite
        ctx.save_for_backward(x, z, *params)
        return x * excite(z).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        x, z, *params = ctx.saved_tensors
        dev, enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(dev, dtype=dtype, enabled=enabled):
            zr = z.detach().requires_grad_()
            s = ctx.excite(zr)
        ds = (g * x).sum((2, 3))  # pass 1: reads g and x
        wanted = [p for p, need in zip(params, ctx.needs_input_grad[2:]) if need]  # frozen weights: no grad
        dz, *dwanted = torch.autograd.grad(s, (zr, *wanted), ds.view_as(s).to(s.dtype), allow_unused=True)
        dparams = iter(dwanted)
        hw = x.shape[2] * x.shape[3]
        dx = torch.addcmul((dz / hw).to(g.dtype).view(*dz.shape, 1, 1), g, s.detach().to(g.dtype))  # pass 2
        # each weight's gradient in its parameter's own strides (channels_last weights of shape h x C x 1 x 1):
        # what DDP's gradient buckets expect
        grads = [torch.empty_like(p).copy_(next(dparams)) if need else None
                 for p, need in zip(params, ctx.needs_input_grad[2:])]
        return (dx, None, *grads)


__all__ = ["SqueezeScale"]
