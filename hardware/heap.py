"""The garbage collector of a long-running strideflow process (`serve`, its analysis workers and
store process, `strideflow stream`, `bench stream`), once its start-up is done.

CPython's cycle collector walks every tracked object of the generations it collects: its youngest
generation after every 700 new container objects, and the whole heap now and then. At 200 live
pods a `serve` process spent ~2 s of CPU per minute in it (~5 % of its CPU) and paused for 30-60
ms at each full collection, which everything in flight waited out (benchmarks/README.md,
issue 19). `settle_collector`:

- moves every object alive after start-up (modules, classes, the app; they live as long as the
  process) to the permanent generation (`gc.freeze`), so later collections skip them;
- collects the youngest generation every `YOUNG_GENERATION_THRESHOLD` new container objects
  instead of 700: a packet makes a few dozen short-lived ones, which are freed by reference
  counting anyway; the collector is only for cycles, and the extra ones it holds are a few MB.

Garbage made afterwards is collected as before. Only for a process's own entry point: it
changes the whole interpreter, so a library call or a test process must not make it. (Here,
below `service`, so that the stream client's command uses it too.)
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 20_000  # new container objects between young collections (CPython: 700)


def settle_collector() -> int:
    """Collect once, exempt every object alive now from later collections, and collect the youngest
    generation every YOUNG_GENERATION_THRESHOLD allocations; returns the objects frozen."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
    return gc.get_freeze_count()
