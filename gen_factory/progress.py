"""Progress for long steps (training, pull, bulk): a tqdm bar with ETA on a terminal, a few lines elsewhere.

A bar redrawn many times a second is noise in a log file, and test output is no terminal either, so
the form follows where stderr goes: a terminal gets the bar; a log gets a line at each tenth of the
work, and only once the step has run `QUIET_S` (quick steps stay silent); tests get nothing.
GENFACTORY_PROGRESS=bar|lines|off forces one. Everything goes to stderr: stdout stays for results.
Use it as ``with progress(total, "B") as p: p.update(len(chunk))``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("bar", "lines", "off")
QUIET_S = 2.0  # a step shorter than this logs no lines


def mode() -> str:
    """'bar', 'lines' or 'off' for this process's stderr (GENFACTORY_PROGRESS forces one)."""
    forced = os.environ.get("GENFACTORY_PROGRESS", "").lower()
    if forced in MODES:
        return forced
    if "PYTEST_CURRENT_TEST" in os.environ:
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


class Progress:
    """Counts done work toward `total`; shows it as the current mode says. `figures` ride along."""

    def __init__(self, total: float | None, unit: str, desc: str, how: str):
        self.total, self.unit, self.desc, self.how = total, unit, desc, how
        self.n: float = 0  # stays an int while updates are ints (a bar then shows 4/90, not 4.0/90)
        self.figures: dict[str, object] = {}
        self._started = time.monotonic()
        self._tenths_logged = 0
        self._bar = None
        if how == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                             unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000)

    def update(self, n: float = 1) -> None:
        self.advance_to(self.n + n)

    def advance_to(self, n: float, desc: str | None = None, **figures: object) -> None:
        """Move to `n` done (never backwards), with a new description or figures if given."""
        delta = max(0, n - self.n)
        self.n += delta
        self.desc = desc or self.desc
        self.figures.update(figures)
        if self._bar is not None:
            if desc:
                self._bar.set_description_str(desc, refresh=False)
            if figures:
                self._bar.set_postfix(self.figures, refresh=False)
            self._bar.update(delta)
        elif self.how == "lines":
            self._maybe_log()

    def _maybe_log(self) -> None:
        if not self.total:
            return
        tenths = min(10, int(10 * self.n / self.total))
        if tenths <= self._tenths_logged:
            return
        self._tenths_logged = tenths
        elapsed = time.monotonic() - self._started
        if elapsed < QUIET_S:
            return
        eta = elapsed * (self.total - self.n) / self.n if self.n else 0.0
        parts = [f"{self.desc} {self._amount(self.n)}/{self._amount(self.total)} ({10 * tenths}%)"]
        parts += [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.figures.items()]
        parts.append(f"[{elapsed:.0f}s elapsed, ETA {eta:.0f}s]")
        print("  ".join(parts), file=sys.stderr, flush=True)

    def _amount(self, n: float) -> str:
        if self.unit == "B":
            from tqdm import tqdm

            return tqdm.format_sizeof(n, "B", 1024)
        return f"{n:.0f}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def progress(total: float | None, unit: str = "it", desc: str = "", how: str | None = None
             ) -> Iterator[Progress]:
    """A Progress for the block, closed after it; `how` overrides the mode (see `mode`)."""
    bar = Progress(total, unit, desc, how or mode())
    try:
        yield bar
    finally:
        bar.close()
