"""Sessions share one cached model: every computation runs on a pooled view of it (probe.hooks.borrowed_view).

Four threads probe, intervene, knock out and compute class-wise statistics on one model at once while
it sits in training mode with a hook of its own: the model keeps its mode and its own hook (which the
views run too), none of our hooks is left on it or on a pooled view, each result equals the same call
run alone, and the pool holds no more views than there were concurrent computations.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from se_core.analysis.knockout import accuracy
from se_core.analysis.stats import compute_stats
from se_core.data.datasets import ImageSet
from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import SEConfig
from se_core.probe import hooks
from se_core.probe.sites import Intervention, find_sites, hook_count, intervene, probe

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture
def shared() -> tuple[torch.nn.Module, list[int]]:
    """A small SE net in training mode with one hook of its own (counting its calls)."""
    torch.manual_seed(0)
    model = cifar_resnet(20, SEConfig(reduction=4))
    calls: list[int] = []
    model.layer1.register_forward_pre_hook(lambda mod, args: calls.append(1))
    return model.train(), calls


def _data(n: int = 40) -> ImageSet:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 4
    return ImageSet(x, y, ("a", "b", "c", "d"), f"random{n}", f"views-{n}")


def _jobs(model: torch.nn.Module) -> dict:
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    off = [Intervention(find_sites(model)[0].name, "off")]
    data = _data()
    return {
        "probe": lambda: probe(model, x).gate_matrix(0)[1],
        "intervene": lambda: intervene(model, x, off),
        "knockout": lambda: accuracy(model, data, MEAN, STD, interventions=off, batch_size=16)["top1"],
        "stats": lambda: compute_stats(model, data, MEAN, STD, batch_size=16).s_sum,
    }


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)
    elif isinstance(a, (list, tuple)):
        for u, v in zip(a, b, strict=True):
            _same(u, v)
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_concurrent_computations_leave_the_shared_model_as_it_was(shared) -> None:
    model, calls = shared
    own_hooks = hook_count(model)
    modes = [m.training for m in model.modules()]
    alone = {k: fn() for k, fn in _jobs(model).items()}
    assert calls, "the views run the model's own hook"
    out: dict = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run(name, fn) -> None:
        try:
            start.wait()
            out[name] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=item) for item in _jobs(model).items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for name in alone:
        _same(alone[name], out[name])
    assert [m.training for m in model.modules()] == modes  # still in training mode: only views were put in eval
    assert hook_count(model) == own_hooks
    pool = hooks._VIEWS[model]
    assert 1 <= len(pool) <= 4
    assert all(hook_count(view) == own_hooks for view, _ in pool)


def test_a_view_returns_to_the_pool_without_the_hooks_of_a_failed_run(shared) -> None:
    model, _ = shared
    own_hooks = hook_count(model)
    with pytest.raises(RuntimeError, match="mid-forward"):
        with hooks.borrowed_view(model) as view:
            def boom(mod, args, out):
                raise RuntimeError("mid-forward")
            view.layer2.register_forward_hook(boom)  # a computation's own hook, not removed by it
            assert hook_count(view) == own_hooks + 1
            view(torch.randn(1, 3, 32, 32))
    (entry,) = hooks._VIEWS[model]
    assert entry[0] is view and hook_count(view) == own_hooks  # its own hook kept, the leftover gone
    assert hook_count(model) == own_hooks
