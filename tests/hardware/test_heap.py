"""`hardware.heap.settle_collector`: start-up objects frozen, young collections rarer, and garbage
made afterwards still collected. Run in a child interpreter: it changes the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = """
import gc, json, weakref
from strideflow.hardware.heap import YOUNG_GENERATION_THRESHOLD, settle_collector

class Node:
    pass

kept = Node(); kept.self = kept  # a cycle alive at start-up: frozen, never walked again
frozen = settle_collector()
before = gc.get_count()[0]

late = Node(); late.self = late  # a cycle made afterwards, then dropped
gone = weakref.ref(late)
del late
gc.collect()
print(json.dumps({
    "frozen": frozen,
    "freeze_count": gc.get_freeze_count(),
    "threshold": gc.get_threshold(),
    "expected_young": YOUNG_GENERATION_THRESHOLD,
    "late_collected": gone() is None,
    "kept_tracked": gc.is_tracked(kept),
    "kept_in_generations": any(o is kept for o in gc.get_objects()),
    "young_count_after": before,
}))
"""


def _run_child() -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_settle_collector_freezes_start_up_and_still_collects_later_cycles():
    out = _run_child()
    assert out["frozen"] > 1000  # the interpreter's and the imports' objects
    assert out["freeze_count"] == out["frozen"]
    assert out["threshold"][0] == out["expected_young"] == 20_000
    assert out["late_collected"]  # a cycle made after start-up is garbage as before
    # the start-up cycle is still alive and tracked, but in no generation a collection walks
    assert out["kept_tracked"] and not out["kept_in_generations"]
    assert out["young_count_after"] < 100
