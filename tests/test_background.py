"""se_core.util.background: long jobs on lower-priority threads, results and errors back in the caller."""
from __future__ import annotations

import sys
import threading

import pytest

from se_core.util import background

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _where() -> tuple[int, int]:
    return threading.get_native_id(), background.thread_nice()


@linux
def test_job_runs_on_a_thread_niced_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_BACKGROUND_NICE", "7")
    mine = background.thread_nice()
    tid, nice = background.run(_where)
    assert tid != threading.get_native_id()
    assert nice == min(19, mine + 7)
    assert background.thread_nice() == mine  # the caller's own priority is untouched


@linux
def test_concurrent_jobs_do_not_queue_behind_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions' jobs run at once: each waits for the other to start (it would deadlock on one thread)."""
    monkeypatch.setenv("SE_LENS_BACKGROUND_NICE", "5")
    both = threading.Barrier(2, timeout=30)
    out: list[int] = []

    def job() -> None:
        both.wait()
        out.append(threading.get_native_id())

    callers = [threading.Thread(target=background.run, args=(job,)) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert len(set(out)) == 2


def test_results_and_exceptions_reach_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_BACKGROUND_NICE", "3")
    assert background.run(lambda a, *, b: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        background.run(lambda: 1 / 0)


def test_zero_runs_the_job_on_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_BACKGROUND_NICE", "0")
    assert background.run(threading.get_native_id) == threading.get_native_id()
