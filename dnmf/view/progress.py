"""Progress of a fit: one bar per fit, fed by the engine's per-iteration callback.

``NMF(verbose=1)`` draws a :class:`ProgressBar`: iterations done out of ``max_iter``, the loss, its relative
improvement over the previous iteration, and the time left. With ``tqdm`` installed (``pip install
'dnmf[notebook]'``) it is ``tqdm.auto``'s bar, a widget in Jupyter and a text bar in a terminal; without it, a
small text bar on stderr. :func:`chain_callbacks` runs the bar and a user's callback from the one ``callback`` slot
of :func:`dnmf.core.engine.run`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from dnmf.core.engine import IterationRecord
from dnmf.view.display import format_loss

__all__ = ["ProgressBar", "TextBar", "chain_callbacks", "relative_improvement", "tqdm_available"]

Callback = Callable[[IterationRecord], Any]


def tqdm_available() -> bool:
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        return False
    return True


def relative_improvement(previous: float, loss: float) -> float:
    """``(previous − loss) / previous``: the share of the loss the last iteration removed (NaN at the start)."""
    if not math.isfinite(previous) or previous == 0:
        return math.nan
    return (previous - loss) / previous


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class TextBar:
    """A plain-text progress bar for when ``tqdm`` is not installed.

    On a terminal it redraws one line; elsewhere (a log file, a CI job) it writes a line at most every
    ``min_interval`` seconds, and always the last one.

    Parameters
    ----------
    total : int
        Iterations the fit may run (``max_iter``), for the bar and the time left.
    initial : int
        Iterations already done (a resumed fit).
    description : str
    file : file-like, default=sys.stderr
    min_interval : float
        Seconds between two lines when ``file`` is not a terminal.
    width : int
        Characters of the bar itself.
    """

    def __init__(self, total: int, initial: int = 0, description: str = "dnmf", file: TextIO | None = None,
                 min_interval: float = 1.0, width: int = 24) -> None:
        self.total = total
        self.n = initial
        self.initial = initial
        self.description = description
        self.file = file if file is not None else sys.stderr
        self.min_interval = min_interval
        self.width = width
        self.postfix = ""
        self.started = time.perf_counter()
        self._last_written = -math.inf
        self._interactive = bool(getattr(self.file, "isatty", lambda: False)())
        self.closed = False

    def write(self, message: str) -> None:
        """A line above the bar."""
        print(message, file=self.file, flush=True)

    def line(self) -> str:
        done = self.n - self.initial
        elapsed = time.perf_counter() - self.started
        remaining = elapsed / done * (self.total - self.n) if done > 0 else math.nan
        filled = int(self.width * self.n / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        return (f"{self.description} {self.n}/{self.total} [{bar}] {self.postfix} "
                f"elapsed {_format_seconds(elapsed)} ETA {_format_seconds(remaining)}").rstrip()

    def update(self, n: int, postfix: str) -> None:
        self.n, self.postfix = n, postfix
        now = time.perf_counter()
        if self._interactive:
            self.file.write("\r" + self.line())
            self.file.flush()
        elif now - self._last_written >= self.min_interval or n >= self.total:
            self.write(self.line())
            self._last_written = now

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._interactive:
            self.file.write("\r" + self.line() + "\n")
            self.file.flush()
        elif self.n < self.total:
            self.write(self.line())


class ProgressBar:
    """An :class:`~dnmf.core.engine.IterationRecord` callback that draws one progress bar per fit.

    Parameters
    ----------
    total : int
        ``max_iter``: the bar's length and the basis of the time left.
    initial : int, default=0
        Iterations already done, for a resumed fit.
    description : str, default='dnmf'
    use_tqdm : bool or None, default=None
        ``tqdm.auto`` if installed (None), forced (True), or the built-in :class:`TextBar` (False).
    file : file-like, optional
        Where a text bar goes; stderr by default.
    dashboard_link : str, optional
        Written once above the bar.

    Attributes
    ----------
    losses : list of float
        The loss after every iteration seen.
    """

    def __init__(self, total: int, initial: int = 0, description: str = "dnmf", *, use_tqdm: bool | None = None,
                 file: TextIO | None = None, dashboard_link: str | None = None) -> None:
        use_tqdm = tqdm_available() if use_tqdm is None else use_tqdm
        if use_tqdm:
            from tqdm.auto import tqdm

            self._bar: Any = tqdm(total=total, initial=initial, desc=description, unit="it", file=file,
                                  dynamic_ncols=True, leave=True)
        else:
            self._bar = TextBar(total, initial, description, file=file)
        self._tqdm = use_tqdm
        self._file = file if file is not None else sys.stderr
        self.losses: list[float] = []
        if dashboard_link:
            self._write(f"Dask dashboard: {dashboard_link}")

    def _write(self, message: str) -> None:
        if self._tqdm:
            self._bar.write(message, file=self._file)
        else:
            self._bar.write(message)

    def __call__(self, record: IterationRecord) -> None:
        improvement = relative_improvement(self.losses[-1] if self.losses else math.nan, record.loss)
        self.losses.append(record.loss)
        shown = "n/a" if math.isnan(improvement) else f"{improvement:.2e}"
        postfix = f"loss={format_loss(record.loss, record.loss_resolution)}, rel.impr.={shown}"
        if self._tqdm:
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(record.iteration - self._bar.n)
        else:
            self._bar.update(record.iteration, postfix)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def chain_callbacks(*callbacks: Callback | None) -> Callback | None:
    """One callback that calls each given one in order with the same record; None if none is given."""
    present = [callback for callback in callbacks if callback is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def chained(record: IterationRecord) -> None:
        for callback in present:
            callback(record)

    return chained
