"""How far an ingest run got, told to whoever shows it: core draws nothing itself (the CLI draws a
tqdm bar from these calls, the HTTP API shows nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Progress(Protocol):
    """Receives a run's progress: one `total`, then `advance`s that add up to it, and the odd `message`."""

    def total(self, images: int) -> None:
        """The run will handle this many images (called once, before any `advance`)."""

    def advance(self, images: int, counts: Mapping[str, int]) -> None:
        """`images` more were handled (written, unchanged or failed); `counts` are the run's counts so far."""

    def message(self, text: str) -> None:
        """A step of the run worth a line of its own (deleting replaced photos, swapping in a rebuild)."""


class SilentProgress:
    """Progress that goes nowhere: API upserts, tests, library callers that do not show any."""

    def total(self, images: int) -> None:
        """Nothing to show."""

    def advance(self, images: int, counts: Mapping[str, int]) -> None:
        """Nothing to show."""

    def message(self, text: str) -> None:
        """Nothing to show."""
