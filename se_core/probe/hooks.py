"""The one place SE Lens puts hooks on a model, with Captum's discipline (``_utils/gradient.py``):
register them, let the caller run its forward, remove them in ``finally``.

A Streamlit server shares one cached model between every session, so a hook must see only the
forwards of the thread that installed it; :func:`hooked` wraps each hook so, and holds the model's
lock while its hooks are on.
"""
from __future__ import annotations

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
