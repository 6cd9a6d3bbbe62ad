"""The stream bench's client: which acknowledgement timed a toe-off, the client's event loop, and
the machine's idle and steal shares over the realtime phase."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given
from hypothesis import strategies as st

from strideflow.benchmarks.stream import SAMPLING_RATE_HZ, _acked_time, _machine_shares, _machine_times
from strideflow.hardware.devices import run_client


def _scan(series: list[tuple[float, int]], toe_off_t: float | None) -> float | None:
    """The definition: the first acknowledgement whose samples include the toe-off's."""
    if toe_off_t is None:
        return None
    index = int(round(toe_off_t * SAMPLING_RATE_HZ))
    return next((t for t, acked in series if acked > index), None)


@given(
    steps=st.lists(st.integers(min_value=0, max_value=40), max_size=60),
    toe_off_sample=st.one_of(st.none(), st.integers(min_value=-5, max_value=2500)),
)
def test_acked_time_is_the_first_ack_that_holds_the_toe_off(steps, toe_off_sample):
    acked, series = 0, []
    for i, step in enumerate(steps):  # sample counts only grow (a repeated count: a duplicate ack)
        acked += step
        series.append((1000.0 + 0.1 * i, acked))
    toe_off_t = None if toe_off_sample is None else toe_off_sample / SAMPLING_RATE_HZ
    assert _acked_time(series, toe_off_t) == _scan(series, toe_off_t)


def test_known_answer():
    series = [(1.0, 20), (2.0, 40), (3.0, 40), (4.0, 60)]
    assert _acked_time(series, 0.0) == 1.0  # sample 0 is in the first packet
    assert _acked_time(series, 19 / SAMPLING_RATE_HZ) == 1.0
    assert _acked_time(series, 20 / SAMPLING_RATE_HZ) == 2.0
    assert _acked_time(series, 59 / SAMPLING_RATE_HZ) == 4.0
    assert _acked_time(series, 60 / SAMPLING_RATE_HZ) is None  # not acknowledged yet


def test_run_client_returns_the_result_on_uvloop():
    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert run_client(main()).startswith("uvloop")


def test_machine_shares_known_answer():
    # (idle, steal, all) CPU seconds summed over the cores: 20 of 100 s idle, 2 stolen
    shares = _machine_shares((10.0, 1.0, 100.0), (30.0, 3.0, 200.0))
    assert shares == {"machine_idle_pct": 20.0, "machine_steal_pct": 2.0}
    never = _machine_shares(None, (30.0, 3.0, 200.0))  # realtime never began
    assert all(math.isnan(v) for v in never.values())


def test_machine_times_of_this_machine_add_up():
    idle, steal, total = _machine_times()
    assert 0.0 <= idle <= total and 0.0 <= steal <= total
