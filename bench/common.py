"""Shared set-up for the benchmarks: a throw-away data directory and a registered model."""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time


def temp_home(prefix: str) -> str:
    os.environ.setdefault("GENFACTORY_HOME", tempfile.mkdtemp(prefix=prefix))
    return os.environ["GENFACTORY_HOME"]


def registered(dataset: str, name: str, epochs: int) -> str:
    """Train (briefly: throughput does not depend on quality) and register; return name@champion."""
    from gen_factory import registry
    from gen_factory.services.pipeline import TrainJob, train_and_register

    try:
        registry.resolve(f"{name}@champion")
    except registry.ModelNotFound:
        train_and_register(TrainJob(dataset, model_name=name, epochs=epochs), log=lambda *_: None)
    return f"{name}@champion"


def header(title: str) -> str:
    return (f"# {title} — {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, no GPU")


class Sampler:
    """Calls `sample()` every `every` seconds on a thread for the length of a `with` block (peak
    memory of processes, say), once more at the end."""

    every = 1.0

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)
        self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
