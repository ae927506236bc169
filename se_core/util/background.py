"""Long computations on threads the OS schedules after interactive ones.

One server shares its cores between all sessions: an Integrated Gradients run (seconds to minutes)
and a probe someone is waiting for (tens of milliseconds) both want them, and the kernel's fair
scheduler would give them equal shares. :func:`run` runs a long job on a pool thread whose nice value
was raised once when the thread started (on Linux nice is per thread), so a waiting probe gets the
core first and the job uses what is left. The caller blocks until the job is done and gets its result
or its exception. The pool grows with demand (one thread per concurrent job, up to ``MAX_JOBS``), so
jobs of different sessions do not queue behind each other.

Thread-local state does not travel: the job starts with torch's defaults (autograd on, no
``inference_mode``); a job sets the modes it needs itself. Elsewhere than Linux, or with
``SE_LENS_BACKGROUND_NICE=0``, :func:`run` simply calls the job.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from se_core import config

T = TypeVar("T")
MAX_JOBS = 64
"""Concurrent background jobs at most (more wait for a free thread)."""

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def thread_nice() -> int:
    """The calling thread's own nice value (Linux; the process's elsewhere)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id() if sys.platform.startswith("linux") else 0)


def _lower_priority(increment: int) -> None:
    """Raise this thread's nice value by ``increment`` (a pool thread's initializer: once, never undone)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, thread_nice() + increment))
    except OSError:  # a sandbox that forbids it: the job still runs, at normal priority
        pass


def _pool(increment: int) -> ThreadPoolExecutor:
    with _lock:
        if increment not in _pools:
            _pools[increment] = ThreadPoolExecutor(MAX_JOBS, thread_name_prefix=f"se-lens-background-nice{increment}",
                                                   initializer=_lower_priority, initargs=(increment,))
        return _pools[increment]


def run(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` at background priority (see the module docstring); returns its result or raises
    its exception in the caller."""
    increment = config.background_nice()
    if increment == 0 or not sys.platform.startswith("linux"):
        return fn(*args, **kwargs)
    return _pool(increment).submit(fn, *args, **kwargs).result()
