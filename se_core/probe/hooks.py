"""The one place SE Lens puts hooks on a model, with Captum's discipline (``_utils/gradient.py``):
register them, let the caller run its forward, remove them in ``finally``.

A Streamlit server shares one cached model between every session, so computations run on a pooled
:func:`borrowed_view` of it (shared weights, its own modules, hooks and mode) and never hook the model
itself; :func:`hooked` also makes each hook see only the forwards of the thread that installed it, and
holds the hooked module tree's lock while its hooks are on (the lock a view is copied under).
"""
from __future__ import annotations

import copy
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock guarding hook-using calls on ``model`` (one per module object)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def model_view(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s module tree that shares every parameter and buffer (no tensor is copied) but
    owns its hooks and its ``training`` flags.

    A computation that puts its own hooks on a model or changes its mode (Captum's methods do both)
    runs on a view, so it needs no lock across its run and other sessions keep using the shared model
    meanwhile. The copy takes the model's lock while it is made, so it copies the model's own hooks
    (a hook-based weight norm, a user model's hooks) but never one of :func:`hooked`'s. About 50 ms
    for a ResNet-50.
    """
    with model_lock(model):
        shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
        return copy.deepcopy(model, shared)


_Snapshot = list[tuple[nn.Module, dict[str, set]]]


def _hook_keys(model: nn.Module) -> _Snapshot:
    """Which hooks each module of ``model`` holds now (the handles' ids in each hook dict)."""
    return [(m, {name: set(getattr(m, name, {})) for name in _HOOK_DICTS}) for m in model.modules()]


def _restore_hooks(snapshot: _Snapshot) -> None:
    """Remove every hook added since ``snapshot`` was taken (a computation's leftovers), keep the rest."""
    for m, keys in snapshot:
        for name, kept in keys.items():
            d = getattr(m, name, None)
            for k in [k for k in (d or {}) if k not in kept]:
                del d[k]


_VIEWS: weakref.WeakKeyDictionary[nn.Module, list[tuple[nn.Module, _Snapshot]]] = weakref.WeakKeyDictionary()


@contextmanager
def borrowed_view(model: nn.Module) -> Iterator[nn.Module]:
    """A :func:`model_view` of ``model`` in eval mode, for one computation: taken from a pool of idle
    views of that model (made when none is idle), with only the model's own hooks again when returned,
    so repeated computations do not pay for the copy and concurrent ones each get their own."""
    with _LOCKS_GUARD:
        idle = _VIEWS.setdefault(model, [])
        entry = idle.pop() if idle else None
    if entry is None:
        view = model_view(model)
        entry = (view, _hook_keys(view))
    view, snapshot = entry
    try:
        yield view.eval()
    finally:
        _restore_hooks(snapshot)
        with _LOCKS_GUARD:
            _VIEWS.setdefault(model, []).append(entry)


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
               "_state_dict_hooks", "_load_state_dict_pre_hooks")


@dataclass(frozen=True)
class Hook:
    """One hook: on ``module`` (a name in ``model.named_modules()``, or the module itself), run ``fn``
    as a ``forward`` hook ``fn(module, args, output)`` or a ``forward_pre`` hook ``fn(module, args)``."""

    module: str | nn.Module
    kind: Literal["forward", "forward_pre"]
    fn: Callable


def _this_thread(fn: Callable, owner: int) -> Callable:
    def hook(*args):
        return fn(*args) if threading.get_ident() == owner else None
    return hook


@contextmanager
def hooked(model: nn.Module, hooks: Sequence[Hook]) -> Iterator[None]:
    """Context in which ``hooks`` are on ``model`` for forwards of the calling thread only; holds
    :func:`model_lock` throughout and removes every hook on exit, error or not."""
    owner = threading.get_ident()
    by_name = dict(model.named_modules())
    handles = []
    with model_lock(model):
        try:
            for h in hooks:
                mod = by_name[h.module] if isinstance(h.module, str) else h.module
                fn = _this_thread(h.fn, owner)
                handles.append(mod.register_forward_hook(fn) if h.kind == "forward" else mod.register_forward_pre_hook(fn))
            yield
        finally:
            for handle in handles:
                handle.remove()
