"""Holding one library logger to a higher level for one step: the narrow cure for a line that is
expected on a normal run (MLflow creating its store, Ray announcing token auth), never a blanket
filter over everything a library says."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_to(logger_name: str, level: int) -> Iterator[None]:
    """Within the block, `logger_name` logs only at `level` or above; its own level comes back after."""
    logger = logging.getLogger(logger_name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
