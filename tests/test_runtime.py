"""The per-process runtime's side of the process: its garbage-collector schedule."""

from __future__ import annotations

import gc

from core import gc_policy
from core.runtime import create_runtime
from core.settings import Settings


async def test_a_runtime_collects_the_young_generation_less_often(settings: Settings) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # CPython's default
        rt = create_runtime(settings)
        await rt.close()
        assert gc.get_threshold() == (gc_policy.YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(gc_policy.YOUNG_THRESHOLD * 2, 5, 5)  # a process that chose more stays as it is
        gc_policy.apply()
        assert gc.get_threshold() == (gc_policy.YOUNG_THRESHOLD * 2, 5, 5)
    finally:
        gc.set_threshold(*before)
