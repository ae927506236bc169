"""Where does a model look? Captum attributions for one image, SE model next to its vanilla twin.

One verb, :func:`attribute`, runs one of four Captum methods on a 1x3xHxW normalized input
and returns an H x W map:

- ``integrated_gradients``: :class:`captum.attr.IntegratedGradients` (Gauss-Legendre, ``n_steps``
  points, ``internal_batch_size`` at a time) from the chosen baseline; the map is the channel sum
  of the attributions, so it adds up (completeness) to f(x) - f(baseline) up to the convergence
  delta Captum reports (``return_convergence_delta=True``).
- ``saliency``: :class:`captum.attr.Saliency` with ``abs=True``; the map is the channel sum of |grad|.
- ``occlusion``: :class:`captum.attr.Occlusion` sliding a ``3 x w x w`` window (all channels at
  once) with stride ``s``, replaced by the baseline; since the window spans the channels all
  three channels carry the same value and the map is channel 0: the mean drop of the target
  logit when a patch covering that pixel is hidden.
- ``layer_gradcam``: :class:`captum.attr.LayerGradCam` on ``layer`` (default: the last child of
  the model named ``layer*``, ``stages*``, ``features`` or ``blocks``, i.e. ``layer3`` of a CIFAR
  ResNet, ``layer4`` of ResNet-50), with ReLU as in Selvaraju et al.; upsampled to the input size
  by :meth:`captum.attr.LayerAttribution.interpolate` (bilinear).

Baselines live in the model's normalized input space: ``zero`` is 0 there, i.e. the training
set's mean colour (not black); ``blur`` is the image Gaussian-blurred with sigma = min(H, W) / 8;
``mean`` is this image's own per-channel mean colour.

:func:`compare` runs one config on an SE model and its vanilla twin and puts both maps on one
scale; :func:`quality` scores a method with ``captum.metrics.infidelity`` and
``captum.metrics.sensitivity_max`` (settings in :data:`INFIDELITY_NOISE_STD` etc.).

Concurrency: Streamlit sessions share cached models. Every call runs on a view of the model
(:func:`se_core.probe.hooks.borrowed_view`: the same weights, its own modules, hooks and flags), in eval
mode, so Captum's layer hooks never see another session's forwards and nothing is locked while it
computes: a probe of the same model does not wait for an Integrated Gradients run. Parameters' ``requires_grad`` is never touched (Captum differentiates with
``torch.autograd.grad``, so no ``.grad`` is accumulated on the shared weights either).
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from se_core.probe.hooks import borrowed_view

Method = Literal["integrated_gradients", "saliency", "occlusion", "layer_gradcam"]
Baseline = Literal["zero", "blur", "mean"]
METHODS: tuple[str, ...] = ("integrated_gradients", "saliency", "occlusion", "layer_gradcam")
BASELINES: tuple[str, ...] = ("zero", "blur", "mean")
METHOD_TITLES = {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency",
                 "occlusion": "Occlusion", "layer_gradcam": "Layer Grad-CAM"}

#: Infidelity perturbation: I ~ N(0, 0.1^2) per input value, in normalized units (about 0.025
#: on the 0..1 pixel scale, i.e. ~6/255 grey levels for CIFAR std ~0.25): small enough to stay
#: near the image, large enough to move the logits measurably. Captum's ``normalize=True`` is
#: used, so the score does not depend on each method's attribution scale (lower is better).
INFIDELITY_NOISE_STD = 0.1
INFIDELITY_SAMPLES = 32
#: Sensitivity-max perturbation: uniform in an L-inf ball of radius 0.05 normalized units
#: (~3/255 grey levels), 4 samples: each sample reruns the method, so this is the costly part
#: (4 x n_steps passes for IG). The score is max ||A(x') - A(x)|| / ||A(x)|| (lower is better).
SENSITIVITY_RADIUS = 0.05
SENSITIVITY_SAMPLES = 4
QUALITY_SEED = 0

# layer*: ResNets; stages/stage*: timm; features: torchvision MobileNet/EfficientNet; blocks: timm; trunk_output:
# torchvision RegNet; s1..s4: timm RegNet; layers: torchvision MnasNet.
_STAGE_NAME = re.compile(r"^(layer\d+|stages?\d*|features|blocks|trunk_output|s\d+|layers)$")


@dataclass(frozen=True)
class AttributionConfig:
    """One attribution method and its settings (see the module docstring for their meaning)."""

    method: Method
    n_steps: int = 32
    internal_batch_size: int = 16
    baseline: Baseline = "zero"
    occlusion_window: int = 8
    occlusion_stride: int = 4
    layer: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown attribution method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; use one of {', '.join(BASELINES)}")
        for name in ("n_steps", "internal_batch_size", "occlusion_window", "occlusion_stride"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class AttributionResult:
    """An H x W ``map`` (float32) plus Captum's ``raw`` output (CPU), the IG convergence ``delta``
    and ``output_gap`` = f(x) - f(baseline) it should be compared with (``None`` for other
    methods), and the wall-clock ``seconds`` of the Captum call."""

    method: str
    target: int
    map: np.ndarray
    raw: torch.Tensor
    delta: float | None
    seconds: float
    output_gap: float | None = None
    layer: str | None = None


@dataclass(frozen=True)
class PairAttribution:
    """SE and vanilla results for one config and target, on a common scale.

    Each model's map is divided by its own max |value| (``se_scale``/``vanilla_scale``), so both
    lie in [-1, 1] and one colour scale compares *where* each model looks, not how large its
    logits happen to be. ``diff`` = se_norm - vanilla_norm, in [-2, 2], signed."""

    se: AttributionResult
    vanilla: AttributionResult
    se_norm: np.ndarray
    vanilla_norm: np.ndarray
    diff: np.ndarray
    se_scale: float
    vanilla_scale: float


def default_layer(model: nn.Module) -> str:
    """Name of the last top-level child called ``layer*``/``stages*``/``features``/``blocks``."""
    names = stage_layers(model)
    if not names:
        children = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"no stage module (layer*, stages, features, blocks, trunk_output, s1.., layers) among the "
                         f"model's children "
                         f"({children}); choose the Grad-CAM layer explicitly")
    return names[-1]


def stage_layers(model: nn.Module) -> list[str]:
    """Top-level children that can host Grad-CAM (``layer*``, ``stages*``, ``features``, ``blocks``, and the
    library nets' ``trunk_output`` / ``s1``.. (RegNet) and ``layers`` (MnasNet))."""
    return [n for n, _ in model.named_children() if _STAGE_NAME.match(n)]


def _resolve_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    name = name or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules:
        stages = [n for n, _ in model.named_children()]
        raise ValueError(f"the model has no module {name!r}; top-level modules are {', '.join(stages)}")
    return name, modules[name]


def make_baseline(x: torch.Tensor, kind: Baseline) -> torch.Tensor:
    """The reference input for IG/occlusion, same shape as ``x`` (see module docstring)."""
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        h, w = x.shape[-2:]
        sigma = max(1.0, min(h, w) / 8)
        k = 2 * math.ceil(3 * sigma) + 1
        k = min(k, 2 * ((min(h, w) - 1) // 2) + 1)  # reflect padding needs k // 2 < size
        return gaussian_blur(x, [k, k], [sigma, sigma]) if k >= 3 else x.clone()
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


FORWARD_ONLY = ("occlusion",)
"""Methods that need no gradient: run under ``torch.inference_mode`` (Occlusion 1.17x faster on SE-ResNet-20,
1.02x on SE-ResNet-50: ``bench/attribution_speed.py``)."""


@contextmanager
def _private(model: nn.Module, grad: bool = True) -> Iterator[nn.Module]:
    """A view of ``model`` (:func:`~se_core.probe.hooks.borrowed_view`: shared weights, its own hooks and
    flags) in eval mode, with gradients on (``grad=False``: forward passes only, under
    ``torch.inference_mode``): Captum hooks and differentiates it while other sessions use the shared
    model, and nothing of this run is left on either."""
    with borrowed_view(model) as view, torch.enable_grad() if grad else torch.inference_mode():
        yield view


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _prepare(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a 1x3xHxW tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image as a 1xCxHxW (or CxHxW) tensor, got shape {tuple(x.shape)}")
    # A copy outside inference mode: inputs made under torch.inference_mode cannot enter autograd.
    return x.detach().to(_device(model), torch.float32).clone()


def _check_target(logits: torch.Tensor, target: int) -> int:
    n = logits.shape[-1]
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < n:
        raise ValueError(f"target class {target!r} is out of range: the model has {n} classes (0..{n - 1})")
    return int(target)


def _captum(model: nn.Module, x: torch.Tensor, target: int, config: AttributionConfig
            ) -> tuple[torch.Tensor, torch.Tensor | None, str | None]:
    """Run the Captum method on a batch ``x`` (N x C x H x W): (raw attributions, IG delta, layer)."""
    from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency

    m = config.method
    if m == "integrated_gradients":
        attr, delta = IntegratedGradients(model).attribute(
            x, baselines=make_baseline(x, config.baseline), target=target, n_steps=config.n_steps,
            internal_batch_size=config.internal_batch_size, return_convergence_delta=True)
        return attr, delta, None
    if m == "saliency":
        # Captum would set requires_grad itself, with a warning; do it on a detached alias instead.
        return Saliency(model).attribute(x.detach().requires_grad_(True), target=target, abs=True), None, None
    if m == "occlusion":
        h, w = x.shape[-2:]
        win, stride = config.occlusion_window, config.occlusion_stride
        if win > min(h, w) or stride > min(h, w):
            raise ValueError(f"occlusion window {win} / stride {stride} must not exceed the input size {h}x{w}")
        attr = Occlusion(model).attribute(
            x, sliding_window_shapes=(x.shape[1], win, win), strides=(x.shape[1], stride, stride),
            baselines=make_baseline(x, config.baseline), target=target,
            perturbations_per_eval=config.internal_batch_size)
        return attr, None, None
    name, layer = _resolve_layer(model, config.layer)
    attr = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    return attr, None, name


def _to_map(method: str, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N x H x W map from Captum's raw output (see module docstring for the reduction)."""
    from captum.attr import LayerAttribution

    if method == "layer_gradcam":
        return LayerAttribution.interpolate(raw, size, interpolate_mode="bilinear")[:, 0]
    if method == "occlusion":
        return raw[:, 0]
    return raw.sum(dim=1)


def attribute(model: nn.Module, x: torch.Tensor, target: int, config: AttributionConfig) -> AttributionResult:
    """Attribution map of ``model``'s logit ``target`` for one normalized image ``x``."""
    x = _prepare(model, x)
    with _private(model, grad=config.method not in FORWARD_ONLY) as view:
        with torch.no_grad():
            logits = view(x)
        target = _check_target(logits, target)
        t0 = time.perf_counter()
        raw, delta, layer = _captum(view, x, target, config)
        seconds = time.perf_counter() - t0
        gap = None
        if delta is not None:
            with torch.no_grad():
                base = view(make_baseline(x, config.baseline))
            gap = float(logits[0, target] - base[0, target])
    raw = raw.detach().clone()  # a plain tensor again (Occlusion's is made in inference mode)
    amap = _to_map(config.method, raw, tuple(x.shape[-2:]))[0]
    return AttributionResult(
        method=config.method, target=target, map=amap.float().cpu().numpy().astype(np.float32),
        raw=raw.cpu(), delta=None if delta is None else float(delta.reshape(-1)[0]),
        seconds=seconds, output_gap=gap, layer=layer)


def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax class probabilities (K,) of one normalized image, e.g. to default the target."""
    x = _prepare(model, x)
    with _private(model) as view, torch.no_grad():
        return torch.softmax(view(x).float(), dim=-1)[0].cpu().numpy()


def _normalized(a: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    return (a / scale if scale > 0 else np.zeros_like(a)).astype(np.float32), scale


def compare(se_model: nn.Module, vanilla_model: nn.Module, x: torch.Tensor, target: int,
            config: AttributionConfig, x_vanilla: torch.Tensor | None = None) -> PairAttribution:
    """Same method and target on both models; maps scaled to [-1, 1] each (see class).

    Both models see ``x``, unless ``x_vanilla`` gives the vanilla model its own input (its own
    preprocessing of the same image); the difference is then taken on the SE map's grid.
    """
    se = attribute(se_model, x, target, config)
    va = attribute(vanilla_model, x if x_vanilla is None else x_vanilla, target, config)
    return pair_of(se, va)


def pair_of(se: AttributionResult, va: AttributionResult) -> PairAttribution:
    """Two models' maps of one method on one scale each, and their difference (on the SE map's grid)."""
    se_n, se_s = _normalized(se.map)
    va_n, va_s = _normalized(va.map)
    if va_n.shape != se_n.shape:
        va_n = F.interpolate(torch.from_numpy(va_n)[None, None], size=se_n.shape, mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    return PairAttribution(se, va, se_n, va_n, (se_n - va_n).astype(np.float32), se_s, va_s)


def _input_space(model: nn.Module, config: AttributionConfig, target: int
                 ) -> Callable[..., tuple[torch.Tensor]]:
    """Explanation function N x C x H x W -> 1-tuple of attributions of the same shape (Grad-CAM's
    upsampled map repeated over channels), as Captum's metrics require. A tuple, because
    ``sensitivity_max`` iterates over the explanation of the unperturbed input."""
    def explain(inputs: torch.Tensor | tuple[torch.Tensor, ...], **_: object) -> tuple[torch.Tensor]:
        if isinstance(inputs, tuple):  # sensitivity_max passes the unperturbed input as a 1-tuple
            inputs = inputs[0]
        with torch.enable_grad():
            raw, _, _ = _captum(model, inputs, target, config)
        raw = raw.detach()
        if config.method == "layer_gradcam":
            raw = _to_map(config.method, raw, tuple(inputs.shape[-2:])).unsqueeze(1).expand_as(inputs).contiguous()
        return (raw,)
    return explain


def quality(model: nn.Module, x: torch.Tensor, target: int, config: AttributionConfig) -> dict[str, float]:
    """Captum's ``infidelity`` and ``sensitivity_max`` of ``config``'s method (lower is better).

    Deterministic: perturbations come from a private generator seeded with :data:`QUALITY_SEED`
    (the global RNG is untouched). Settings: :data:`INFIDELITY_NOISE_STD`,
    :data:`INFIDELITY_SAMPLES`, :data:`SENSITIVITY_RADIUS`, :data:`SENSITIVITY_SAMPLES`.
    """
    from captum.metrics import infidelity, sensitivity_max

    x = _prepare(model, x)
    gen = torch.Generator().manual_seed(QUALITY_SEED)

    def gaussian(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = (torch.randn(inputs.shape, generator=gen) * INFIDELITY_NOISE_STD).to(inputs)
        return noise, inputs - noise

    def linf_ball(inputs: torch.Tensor, radius: float) -> torch.Tensor:
        u = torch.rand(inputs.shape, generator=gen).to(inputs)
        return inputs + (2 * u - 1) * radius

    with _private(model) as view:
        with torch.no_grad():
            target = _check_target(view(x), target)
        explain = _input_space(view, config, target)
        attr = explain(x)[0]
        inf = infidelity(view, gaussian, x, attr, target=target, n_perturb_samples=INFIDELITY_SAMPLES,
                         normalize=True)
        sens = sensitivity_max(explain, x, perturb_func=linf_ball, perturb_radius=SENSITIVITY_RADIUS,
                               n_perturb_samples=SENSITIVITY_SAMPLES)
    return {"infidelity": float(inf.reshape(-1)[0]), "sensitivity": float(sens.reshape(-1)[0])}


__all__ = ["AttributionConfig", "AttributionResult", "PairAttribution", "METHODS", "BASELINES",
           "METHOD_TITLES", "attribute", "compare", "quality", "predict", "default_layer", "stage_layers",
           "make_baseline", "INFIDELITY_NOISE_STD", "INFIDELITY_SAMPLES", "SENSITIVITY_RADIUS", "SENSITIVITY_SAMPLES"]
