"""Training progress on the driver, which only waits in TorchTrainer.fit while workers train elsewhere.

Ray Train's controller already gathers every worker's report; a UserCallback there (ReportRelay)
hands rank 0's metrics to a zero-CPU actor without waiting on it, and a driver thread polls that
actor and shows epoch, selection figure and ETA through `gen_factory.progress`. Kept apart
from the worker code so the controller unpickles the callback without importing torch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ray
from ray.train import UserCallback

from gen_factory.progress import Progress, mode, progress

POLL_S = 0.5


@ray.remote(num_cpus=0)
class Mailbox:
    """The latest report's metrics: a bar needs only where training is now."""

    def __init__(self):
        self.latest: dict | None = None

    def put(self, metrics: dict) -> None:
        self.latest = metrics

    def get(self) -> dict | None:
        return self.latest


class ReportRelay(UserCallback):
    """Runs in the controller: forwards rank 0's metrics of each report to the mailbox."""

    def __init__(self, mailbox):
        self.mailbox = mailbox

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if metrics:
            self.mailbox.put.remote(metrics[0])  # fire and forget: never stall the controller's loop


@contextmanager
def watched(total: int, stages: int = 1) -> Iterator[list[UserCallback]]:
    """Callbacks for RunConfig(callbacks=...) whose reports a driver thread shows for the block
    (none where progress is off: no actor, no thread). `total`: the epochs of all `stages` together
    (the first fit, then the refit on every row)."""
    if mode() == "off":
        yield []
        return
    mailbox = Mailbox.remote()
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(mailbox, total, stages, stop), daemon=True,
                                name="training progress")
    follower.start()
    try:
        yield [ReportRelay(mailbox)]
    finally:
        stop.set()
        follower.join(timeout=15)
        ray.kill(mailbox)


def _follow(mailbox, total: int, stages: int, stop: threading.Event) -> None:
    """Poll the mailbox until `stop`, then once more: the last report reaches the bar too."""
    best = {}  # per stage: the best selection figure so far
    with progress(total, "epoch", "epoch") as bar:
        while True:
            stopping = stop.wait(POLL_S)
            try:
                metrics = ray.get(mailbox.get.remote(), timeout=10)
            except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
                metrics = None  # a busy or restarting cluster: try again next time
            if metrics and "run_epoch" in metrics:
                _show(bar, metrics, best, stages > 1)
            if stopping:
                return


def _show(bar: Progress, metrics: dict, best: dict, staged: bool) -> None:
    """Move the bar to the reported epoch with the generator's selection figure (best kept per stage)."""
    stage = int(metrics.get("stage", 0))
    what = ("refit " if stage else "fit ") if staged else ""
    epoch = int(metrics["run_epoch"])
    if metrics["epoch"] > metrics["stage_gan_epochs"]:
        bar.advance_to(epoch, f"{what}encoder epoch",
                       reconstruction=float(metrics.get("reconstruction", math.nan)))
        return
    frechet = float(metrics.get("train_frechet", math.inf))
    best[stage] = min(best.get(stage, math.inf), frechet)
    bar.advance_to(epoch, f"{what}epoch", train_frechet=frechet, best=best[stage])
