"""The CLI's progress bar: a tqdm bar on stderr drawn from the ingest service's progress calls.

Why here: core reports progress through a small protocol and draws nothing (the server imports
no tqdm); only a terminal wants a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import TracebackType

from tqdm import tqdm


class TqdmProgress:
    """`with TqdmProgress(enabled) as progress: await service.write(..., progress=progress)`; closes the bar."""

    def __init__(self, enabled: bool = True, desc: str = "indexing") -> None:
        self.enabled = enabled
        self.desc = desc
        self._bar: tqdm[object] | None = None

    def total(self, images: int) -> None:
        """Start the bar (a second call starts a fresh one: one bar per run)."""
        self.close()
        self._bar = tqdm(
            total=images,
            unit="img",
            desc=self.desc,
            file=sys.stderr,
            disable=not self.enabled,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def advance(self, images: int, counts: Mapping[str, int]) -> None:
        """Move the bar on; the counts so far show after it."""
        if self._bar is None or self._bar.disable:
            return
        self._bar.set_postfix(
            new=counts["indexed"],
            same=counts["unchanged"],
            upd=counts["updated"],
            failed=counts["failed"],
            refresh=False,
        )
        self._bar.update(images)

    def message(self, text: str) -> None:
        """A line above the bar."""
        if self.enabled:
            tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
