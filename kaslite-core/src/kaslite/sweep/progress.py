"""What a sweep shows while it runs: a progress bar on a terminal, one line per finished trial otherwise."""

import sys
from collections.abc import Sequence
from typing import Any

from kaslite.sweep.spec import SweepSpec
from kaslite.sweep.summary import TrialRow, describe


class SweepProgress:
    """Fed the sweep's rows over and over; reports each trial once, when it finishes."""

    def __init__(self, spec: SweepSpec, total: int, quiet: bool = False, live: bool | None = None) -> None:
        self.spec = spec
        self.total = total
        self.quiet = quiet
        self._reported: set[int] = set()
        self._bar: Any = None
        self._task: Any = None
        if not quiet and (sys.stdout.isatty() if live is None else live):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn(f"sweep {spec.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            self._task = self._bar.add_task(spec.name, total=total)
            self._bar.start()

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
        elif not self.quiet:
            print(text, flush=True)

    def update(self, rows: Sequence[TrialRow]) -> None:
        """Report trials that finished since the last call."""
        for row in rows:
            if not row.finished or row.run_id in self._reported:
                continue
            self._reported.add(row.run_id)
            detail = f": {row.error}" if row.error else ""
            self._print(f"[{len(self._reported)}/{self.total}] {row.status} {describe(row, self.spec)}{detail}")
        if self._bar is not None:
            self._bar.update(self._task, completed=len(self._reported))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
