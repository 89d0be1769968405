# -*- coding: utf-8 -*-
# Private to restorable.backup: fleet-wide work on the controller (validating, planning every
# host) allocates many small objects while the whole fleet's variables stay alive. Python's cycle
# collector then scans that heap again and again: at 1,000 hosts it took about 30 % of planning's
# CPU and made the cost grow faster than the fleet (bench/plan_fleet.py). That work leaves no
# garbage cycles worth collecting half-way, so the collector waits until it is done.
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Reference counting still frees everything acyclic; cycles wait for the next collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
