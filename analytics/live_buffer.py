"""The live analyzer's sample buffer: growable, trimmable columns indexed by a global sample number."""

from __future__ import annotations

import numpy as np


class SampleColumns:
    """Growable, trimmable columns of equal length indexed by a global sample number."""

    def __init__(self, **widths: int) -> None:
        self._widths = widths
        self._cap = 1024
        self._data = {k: self._alloc(k, self._cap) for k in widths}
        self.start = 0  # global index of the first kept sample
        self._off = 0  # its position in the arrays
        self.stop = 0  # global index one past the last sample

    def _alloc(self, name: str, cap: int) -> np.ndarray:
        w = self._widths[name]
        dtype = bool if name.startswith("is_") else float
        return np.zeros((cap, w) if w > 1 else cap, dtype=dtype)

    def append(self, **cols: np.ndarray) -> None:
        n = len(next(iter(cols.values())))
        used = self.stop - self.start
        if self._off + used + n > self._cap:
            cap = max(self._cap, 2 * (used + n))
            for k, old in self._data.items():
                new = self._alloc(k, cap)
                new[:used] = old[self._off : self._off + used]
                self._data[k] = new
            self._cap, self._off = cap, 0
        a = self._off + used
        for k, v in cols.items():
            self._data[k][a : a + n] = v
        self.stop += n

    def view(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Rows [lo, hi) by global index (a view: copy before keeping)."""
        return self._data[name][self._off + lo - self.start : self._off + hi - self.start]

    def trim(self, lo: int) -> None:
        """Forget rows before global index lo."""
        lo = min(max(lo, self.start), self.stop)
        self._off += lo - self.start
        self.start = lo
