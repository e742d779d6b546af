"""One progress line on stderr: rewritten in place on a terminal, one line per step otherwise."""

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.1


class ProgressLine:
    """`round 2/3 ours-sqlite bidi 12000/20000`, redrawn at most every REDRAW_SECONDS."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out = out
        self._live = out.isatty()
        self._label = ""
        self._total = 0
        self._drawn = 0.0

    def begin(self, label: str, total: int) -> None:
        self._label, self._total = label, total
        if self._live:
            self._drawn = 0.0  # a new step is shown at once
            self.update(0)
        else:
            print(f"{label} ({total})" if total else label, file=self._out, flush=True)

    def update(self, done: int) -> None:
        if not self._live:
            return
        now = time.monotonic()
        if now - self._drawn < REDRAW_SECONDS and done < self._total:
            return
        self._drawn = now
        count = f" {done}/{self._total}" if self._total else ""
        self._out.write(f"\r\x1b[K{self._label}{count}")
        self._out.flush()

    def clear(self) -> None:
        if self._live:
            self._out.write("\r\x1b[K")
            self._out.flush()
