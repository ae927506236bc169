"""Deletion and insertion curves (RISE) against a direct computation on a linear model whose target logit is a
weighted sum of pixels; ordering, endpoints, areas, and the model left as it was found."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from se_core.analysis.attribution import AttributionConfig, attribute, make_baseline
from se_core.analysis.faithfulness import area, deletion_insertion, pixel_order
from se_core.probe.hooks import model_lock

H = W = 3


class Seen(list):
    """What every forward saw, shared by the model and the views of it that a call borrows (not copied)."""

    def __deepcopy__(self, memo: dict) -> Seen:
        return self


class PixelSum(nn.Module):
    """Logits (0, sum_{c,y,x} w[y,x] * x[c,y,x]): the target (class 1) has a weight per pixel."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))
        self.bn = nn.BatchNorm1d(1)  # a module whose mode matters, to see eval mode and its restoration
        self.seen: Seen = Seen()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_inference_mode_enabled()))
        logit = (x * self.weights).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


@pytest.fixture
def weights() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(H, W))


def _p(model: PixelSum, inp: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(inp), -1)[0, 1])


def _direct(model: PixelSum, x: torch.Tensor, base: torch.Tensor, order: np.ndarray, counts, reveal: bool) -> np.ndarray:
    """The curve pixel by pixel: copy the input, overwrite the first k ranked pixels, run the model."""
    out = []
    for k in counts:
        inp = (base if reveal else x).clone()
        for idx in order[:k]:
            r, c = divmod(int(idx), W)
            inp[0, :, r, c] = (x if reveal else base)[0, :, r, c]
        out.append(_p(model, inp))
    return np.array(out)


@pytest.mark.parametrize("baseline", ["zero", "blur", "mean"])
def test_curves_equal_direct_computation(weights, baseline):
    model = PixelSum(weights)
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    amap = np.random.default_rng(2).normal(size=(H, W)).astype(np.float32)
    res = deletion_insertion(model, x, 1, amap, baseline=baseline, steps=H * W, batch_size=4)
    base = make_baseline(x, baseline)
    order = np.argsort(-amap.ravel(), kind="stable")
    counts = np.arange(H * W + 1)
    np.testing.assert_allclose(res.deletion.fractions, counts / (H * W))
    np.testing.assert_allclose(res.deletion.probabilities, _direct(model, x, base, order, counts, False), atol=1e-6)
    np.testing.assert_allclose(res.insertion.probabilities, _direct(model, x, base, order, counts, True), atol=1e-6)
    # endpoints: the model on x and on the baseline
    assert res.deletion.probabilities[0] == pytest.approx(_p(model, x), abs=1e-6)
    assert res.deletion.probabilities[-1] == pytest.approx(_p(model, base), abs=1e-6)
    assert res.insertion.probabilities[0] == pytest.approx(_p(model, base), abs=1e-6)
    assert res.insertion.probabilities[-1] == pytest.approx(_p(model, x), abs=1e-6)
    for curve in (res.deletion, res.insertion):
        assert curve.auc == pytest.approx(np.trapezoid(curve.probabilities, curve.fractions), abs=1e-12)
    assert (res.target, res.order, res.baseline) == (1, "attribution", baseline)


def test_fewer_steps_than_pixels_and_area():
    model = PixelSum(np.ones((4, 5)))
    res = deletion_insertion(model, torch.ones(1, 3, 4, 5), 1, np.ones((4, 5)), steps=3)
    np.testing.assert_allclose(res.deletion.fractions, [0, 0.35, 0.65, 1.0])  # rint(20 * k / 3) / 20
    assert area([0, 0.5, 1], [1, 0, 1]) == pytest.approx(0.5)


def test_exact_weights_give_the_lowest_deletion_area(weights):
    model = PixelSum(weights)
    x = torch.ones(1, 3, H, W)  # each pixel's contribution to the logit is 3 * its weight
    best = deletion_insertion(model, x, 1, weights, steps=H * W)
    rng = np.random.default_rng(5)
    for _ in range(40):
        perm = rng.permutation(weights.ravel()).reshape(H, W)
        other = deletion_insertion(model, x, 1, perm, steps=H * W)
        assert best.deletion.auc <= other.deletion.auc + 1e-9
        assert best.insertion.auc >= other.insertion.auc - 1e-9
    for seed in range(5):  # it falls at least as fast as a random order at every step
        rnd = deletion_insertion(model, x, 1, weights, steps=H * W, order="random", seed=seed)
        assert (best.deletion.probabilities <= rnd.deletion.probabilities + 1e-9).all()
        assert rnd.order == "random"


def test_integrated_gradients_map_beats_random_on_the_linear_model(weights):
    model = PixelSum(weights)
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    ig = attribute(model, x, 1, AttributionConfig("integrated_gradients", n_steps=8)).map
    res = deletion_insertion(model, x, 1, ig, steps=H * W)
    rng = np.random.default_rng(4)
    for _ in range(20):  # IG of a linear model is each pixel's exact contribution: no order deletes faster
        perm = rng.permutation(ig.ravel()).reshape(H, W)
        assert res.deletion.auc <= deletion_insertion(model, x, 1, perm, steps=H * W).deletion.auc + 1e-9


def test_order_is_stable_and_seeded():
    assert pixel_order(np.zeros((2, 3))).tolist() == list(range(6))  # ties: pixel index
    assert pixel_order(np.array([[1.0, 3.0], [3.0, -1.0]])).tolist() == [1, 2, 0, 3]
    a = pixel_order(np.zeros((4, 4)), "random", seed=7)
    assert a.tolist() == pixel_order(np.ones((4, 4)), "random", seed=7).tolist() != list(range(16))
    assert sorted(a.tolist()) == list(range(16))
    with pytest.raises(ValueError, match="NaN"):
        pixel_order(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="unknown order"):
        pixel_order(np.zeros((2, 2)), "best")


def test_bad_arguments(weights):
    model = PixelSum(weights)
    x = torch.ones(1, 3, H, W)
    with pytest.raises(ValueError, match="map is"):
        deletion_insertion(model, x, 1, np.zeros((H + 1, W)))
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(model, x, 1, weights, steps=0)
    with pytest.raises(ValueError, match="out of range"):
        deletion_insertion(model, x, 2, weights)


def test_eval_mode_inference_no_hooks_and_restored_mode(weights):
    model = PixelSum(weights)
    model.train()
    model.bn.eval()  # a mixed state must come back exactly
    deletion_insertion(model, torch.ones(1, 3, H, W), 1, weights, steps=4, batch_size=2)
    assert model.seen and all(s == (False, True) for s in model.seen)  # eval mode, inference mode, every forward
    assert model.training and not model.bn.training  # the shared model's own flags were never touched
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.weights.requires_grad and model.weights.grad is None


def test_runs_on_a_view_while_another_caller_holds_the_model_lock(weights):
    """#18: a call computes on a borrowed view of the model, so a lock held on the shared model (a probe
    registering its hooks) does not hold it up once a view exists; the numbers are those of a call alone."""
    model = PixelSum(weights)
    x = torch.ones(1, 3, H, W)
    alone = deletion_insertion(model, x, 1, weights, steps=2)  # makes the model's first view
    done: list = []

    def run() -> None:
        done.append(deletion_insertion(model, x, 1, weights, steps=2))

    with model_lock(model):
        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        assert done, "the call waited for the shared model's lock"
    assert np.array_equal(done[0].deletion.probabilities, alone.deletion.probabilities)
