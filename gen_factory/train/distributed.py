"""Ray Train wiring: the per-worker function and the TorchTrainer that runs it.

Each worker loads the dataset from its spec, takes its shard (DistributedSampler via
``prepare_data_loader``; a table with categorical columns instead draws conditioned batches from
the whole table, `gen_factory.train.batches`), wraps both networks in DDP (``prepare_model``: gloo on
CPU, nccl on GPU), trains the GAN for ``epochs`` and then the f-AnoGAN encoder for ``encoder_epochs``
(the same DDP wiring, the GAN frozen), and reports a checkpoint every ``report_every`` epochs and at
the end of each phase. At each GAN report the EMA generator is scored against the training rows
(`gen_factory.train.selection`): the best one ships and trains the encoder, and ``patience`` reports
without a better one end the GAN phase early. Re-running with the same ``name`` and storage path
makes Ray hand the latest checkpoint back through ``ray.train.get_checkpoint``: the run resumes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen_factory.data import load_dataset, training_split
from gen_factory.data.conditions import CondSampler, cond_blocks
from gen_factory.data.transform import encoding_from_dict
from gen_factory.models import ModelSpec, build_models
from gen_factory.models.encoder import build_encoder
from gen_factory.registry.runs import TrainingFailed
from gen_factory.settings import filesystem
from gen_factory.train.batches import conditional_batches
from gen_factory.train.encoder import EncoderTrainer
from gen_factory.train.hyper import Hyper
from gen_factory.train.loop import GANTrainer
from gen_factory.train.selection import BestGenerator
from gen_factory.train.shards import SELECTION_ROWS, Shard, read_shard, shard_batches, streams

STATE_FILE = "state.pt"
SETTINGS_FILE = "gen_factory_run.json"
REFIT_SETTINGS_FILE = "gen_factory_refit.json"  # the refit stage's own settings, checked the same way
# Settings that may change when a run resumes; any other change means a different model.
RESUMABLE_SETTINGS = (
    "epochs",
    "encoder_epochs",
    "report_every",
    "metric_prefix",
    "patience",
    "mlflow_run_id",
    "mlflow_tracking_uri",
    "refit",  # the refit stage's settings are checked on their own (REFIT_SETTINGS_FILE); whether
)  # there is one is `refit_stage`


def fit(config: dict, name: str, num_workers: int, gpus_per_worker: float, storage_path: str,
        max_failures: int = 3) -> dict:
    """Train on the Ray cluster this process is connected to; return the final checkpoint's state.
    With a `refit` stage in `config`, that state is the refit's and `state["first"]` is the first's.

    A failed worker group (a worker killed, a node lost) restarts from the latest checkpoint up to
    `max_failures` times; past that, TrainingFailed says which run, what failed and how to resume.
    """
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.exceptions import TrainingFailedError

    from gen_factory.train.watch import watched

    check_resumable(config, name, storage_path)
    try:
        stages = [config] + ([config["refit"]] if config.get("refit") else [])
        with watched(sum(_stage_epochs(stage) for stage in stages), len(stages)) as callbacks:
            trainer = TorchTrainer(
                train_loop_per_worker,
                train_loop_config=config,
                scaling_config=ScalingConfig(
                    num_workers=num_workers,
                    use_gpu=gpus_per_worker > 0,
                    resources_per_worker={"CPU": 1, "GPU": gpus_per_worker} if gpus_per_worker else None,
                ),
                run_config=RunConfig(
                    name=name,
                    storage_path=storage_path,
                    failure_config=FailureConfig(max_failures=max_failures),
                    checkpoint_config=CheckpointConfig(num_to_keep=2),
                    logging_config=LoggingConfig(log_level="WARNING"),
                    callbacks=callbacks,  # the driver's progress bar (gen_factory.train.watch)
                ),
            )
            result = trainer.fit()
    except TrainingFailedError as err:
        where = latest_checkpoint_at(name, storage_path)
        raise TrainingFailed(failure_message(name, err, max_failures, where)) from None
    with result.checkpoint.as_directory() as ckpt_dir:
        return torch.load(Path(ckpt_dir) / STATE_FILE, weights_only=True)


def failure_message(name: str, err: Exception, max_failures: int, where: str | None) -> str:
    """One line: the run, what failed (each worker's first error line), where a resume starts, and how."""
    failures = getattr(err, "worker_failures", None) or {}
    if failures:
        what = "; ".join(f"worker {rank}: {_first_line(e)}" for rank, e in sorted(failures.items()))
    else:
        what = _first_line(getattr(err, "controller_failure", None) or err)
    where = f"from the checkpoint of {where}" if where else "from the start (no checkpoint yet)"
    return (f"training run {name!r} failed after {max_failures} restart(s): {what}. Run the same command "
            f"with --run-name {name} to resume {where}")


def latest_checkpoint_at(name: str, storage_path: str) -> str | None:
    """Where the run's newest checkpoint on storage (Ray's checkpoint_<n> folders) stands, e.g. "epoch 3"
    or "epoch 3 of the refit on every row", or None."""
    import pyarrow.fs

    fs, root = filesystem(storage_path)
    newest = None
    for info in fs.get_file_info(pyarrow.fs.FileSelector(f"{root}/{name}", allow_not_found=True)):
        path = f"{info.path}/{STATE_FILE}"
        if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_") \
                and fs.get_file_info(path).type == pyarrow.fs.FileType.File:
            if newest is None or info.mtime > newest[0]:
                newest = (info.mtime, path)
    if newest is None:
        return None
    with fs.open_input_file(newest[1]) as fh:
        state = torch.load(fh, weights_only=True, map_location="cpu")
    return f"epoch {int(state['epoch']) + 1}" + (" of the refit on every row" if state.get("stage") else "")


def _first_line(err: object, limit: int = 160) -> str:
    """The cause, short: Ray's errors start with a header ("Training failed due to worker errors:") and
    end with the cause; a C++ source location in front of it ("[.../pair.cc:545]") says nothing."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    cause = re.sub(r"^\[[^\]]*\]\s*", "", lines[-1] if lines else type(err).__name__)
    if len(cause) <= limit:
        return cause
    cut = cause.rfind(". ", 0, limit)
    return cause[:cut + 1] if cut > 40 else cause[:limit] + "..."


def check_resumable(config: dict, name: str, storage_path: str, settings_file: str = SETTINGS_FILE) -> None:
    """Refuse to resume a run whose model settings differ; remember the settings of a new run.

    Ray resumes any run directory with the same name; mixing a checkpoint of one model with
    the settings of another would silently train something nobody asked for.
    """
    import pyarrow.fs

    from gen_factory.data.validate import DataValidationError

    fs, root = filesystem(storage_path)
    path = f"{root}/{name}/{settings_file}"
    # Through JSON so tuples and lists compare equal.
    wanted = json.loads(json.dumps({k: v for k, v in config.items() if k not in RESUMABLE_SETTINGS}))
    if "refit" in config:
        wanted["refit_stage"] = bool(config["refit"])
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        with fs.open_input_stream(path) as fh:
            saved = json.loads(fh.read())
        if "refit_stage" in wanted:  # runs from before stages trained the refit as a Ray run of its own
            saved.setdefault("refit_stage", wanted["refit_stage"])
        old, new = _flatten(saved), _flatten(wanted)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            same = "the same settings"
            if "warm_start" in changed:  # e.g. a run begun before refits went on from the split's networks
                same += " (" + ("--warm-refit" if saved.get("warm_start") else "--no-warm-refit") + ")"
            raise DataValidationError(
                "run_name", f"{name!r} exists with other settings ({', '.join(changed)})",
                f"pass a new --run-name to start a fresh run, or {same} to resume it")
        return
    fs.create_dir(f"{root}/{name}", recursive=True)
    with fs.open_output_stream(path) as fh:
        fh.write(json.dumps(wanted, indent=2, sort_keys=True).encode())


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _resume(state: dict | None, trainer: GANTrainer, selector: BestGenerator, gan_epochs: int,
            encoder_trainer, rank: int) -> tuple[int, int, EncoderTrainer | None]:
    """(first epoch to train, GAN epochs done, encoder trainer or None) from this stage's latest
    checkpointed `state`, with the trainer and selector restored; (0, 0, None) on a fresh start."""
    if not state:
        return 0, 0, None
    trainer.load_state_dict(state["trainer"])
    if "selection" in state:
        selector.load_state_dict(state["selection"])
    gan_done = state["gan_epochs_done"]
    planned = state.get("gan_epochs", gan_done)  # checkpoints from before early stopping lack these two
    finished = state.get("gan_finished", gan_done >= planned)
    encoder = None
    if gan_epochs > planned:  # more GAN epochs asked for: go on with them (patience counts afresh),
        start, selector.since_best = gan_done, 0  # the encoder starts over after
    elif not finished:  # interrupted during the GAN
        start = gan_done
    else:  # the GAN is done (all its epochs, or stopped early)
        start = max(state["epoch"] + 1, gan_epochs)
        if "encoder" in state:
            encoder = encoder_trainer()
            encoder.load_state_dict(state["encoder"])
    if rank == 0:
        print(f"resuming from the checkpoint of epoch {state['epoch'] + 1} ({gan_done} GAN epochs done)",
              flush=True)
    return start, gan_done, encoder


def _gan_batches(loader, tensors, sampler: CondSampler | None, config: dict, epoch: int, rank: int,
                 world: int):
    """One GAN epoch's batches: this worker's shard, or with training-by-sampling (tables with
    categories) rows drawn per condition from the whole table, seeded per epoch and rank."""
    if sampler is None:
        return loader
    rng = np.random.default_rng([config["seed"], epoch, rank])
    if isinstance(tensors, Shard):  # rows drawn from this worker's shard, the whole table's steps
        return shard_batches(tensors, sampler, config["batch_size"], world, rng)
    return conditional_batches(*tensors.tensors, sampler, config["batch_size"], world, rng)


def train_loop_per_worker(config: dict) -> None:
    """Train `config`'s model and then, if it names one, the `refit` stage's (the same settings on every
    row) in the same worker group: one group start-up per `genfactory train`, not two."""
    import ray.train

    _quiet_ray_train_reports()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    # Ray sets OMP_NUM_THREADS to the CPUs it reserved for this worker: more threads than that only
    # contend (measured: 2 threads on 1 reserved CPU made each epoch about 2x slower).
    reserved = int(os.environ.get("OMP_NUM_THREADS", "0"))
    torch.set_num_threads(reserved or max(1, (os.cpu_count() or 1) // max(1, ctx.get_local_world_size())))
    state = _load_state(ray.train.get_checkpoint())
    stages = [config] + ([config["refit"]] if config.get("refit") else [])
    # Each stage resumes from its own latest state: stage 1's checkpoints carry stage 0's final one
    # (checkpoints from before stages are stage 0's). A stage with nothing left to train returns at once.
    in_stage_1 = bool(state and state.get("stage"))
    saved = [state.get("first") if in_stage_1 else state, state if in_stage_1 else None]
    nodes = _count_nodes(world)
    if rank == 0:
        print(f"training on {world} worker(s) across {nodes} node(s)", flush=True)
    first, offset, networks = None, 0, None
    for index, stage_config in enumerate(stages):
        stage = Stage(index, offset, first, rank, world, networks if stage_config.get("warm_start") else None)
        final, networks = _train_stage(stage_config, saved[index], stage, nodes)
        first, offset = first or final, offset + _stage_epochs(stage_config)


@dataclass(frozen=True)
class Stage:
    """Where one stage sits in the run: its index, how many epochs came before it (the progress bar
    counts over the whole run), stage 0's final state (carried in stage 1's checkpoints), the rank, and
    for a warm-started stage the networks it starts from (the previous stage's last, on every rank)."""

    index: int
    offset: int
    first: dict | None
    rank: int
    world: int
    warm: dict | None = None


def _stage_epochs(config: dict) -> int:
    return config["epochs"] + config.get("encoder_epochs", 0)


def _load_state(checkpoint) -> dict | None:
    if not checkpoint:
        return None
    with checkpoint.as_directory() as ckpt_dir:
        return torch.load(Path(ckpt_dir) / STATE_FILE, weights_only=True, map_location="cpu")


def _train_stage(config: dict, resume_from: dict | None, stage: Stage, nodes: int
                 ) -> tuple[dict | None, dict]:
    """One model: the GAN, then the f-AnoGAN encoder, reporting a checkpoint every `report_every`
    epochs. Returns rank 0's final state (None on the other ranks) and, on every rank, the networks'
    last state (trainer and encoder), which a warm-started next stage goes on from."""
    import ray.train
    import ray.train.torch

    rank, world = stage.rank, stage.world
    torch.manual_seed(config["seed"])  # identical initial weights on every worker
    encoding = encoding_from_dict(config["encoding"])
    shard = None  # a large Parquet table: this worker reads its own rows only (`train.shards`)
    if streams(config["dataset"]) and not config.get("categorical"):
        data = shard = read_shard(config["dataset"], encoding, config["label_column"], rank, world,
                                  config["holdout"], config["seed"], config.get("normal_labels"))
        tensors = shard.tensors()
    else:
        data, _ = training_split(
            load_dataset(config["dataset"], config["label_column"], config.get("categorical")),
            config["holdout"],
            config["seed"],
            config.get("normal_labels"),
        )
        values = data.features if data.kind == "table" else data.images
        tensors = torch.utils.data.TensorDataset(
            torch.from_numpy(encoding.encode(values)), torch.from_numpy(data.labels)
        )
    # A shard's own rows in every epoch, as many on every worker (DDP steps in lockstep)
    own = torch.utils.data.RandomSampler(tensors, num_samples=shard.table_rows // world) if shard else None
    loader = torch.utils.data.DataLoader(tensors, batch_size=max(1, config["batch_size"] // world),
                                         shuffle=own is None, sampler=own,
                                         drop_last=len(tensors) > config["batch_size"])
    loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=shard is None)
    blocks = cond_blocks(encoding.columns) if data.kind == "table" else []

    spec = ModelSpec(**config["spec"])
    g, d = build_models(spec)
    # No buffers to keep in step; syncing them in forward would also clash with several D passes per
    # step. (`forward_sync_buffers` replaced the deprecated `broadcast_buffers` in torch 2.13.)
    ddp = {"forward_sync_buffers": False}
    g = ray.train.torch.prepare_model(g, parallel_strategy_kwargs=ddp)
    d = ray.train.torch.prepare_model(d, parallel_strategy_kwargs=ddp)
    hyper = Hyper(**{**config["hyper"], "betas": tuple(config["hyper"]["betas"])})
    trainer = GANTrainer(g, d, hyper, spec.noise_dim, blocks)
    sampler = CondSampler(data.features, blocks, hyper.uncond_prob) if blocks else None
    scored = shard.sample(SELECTION_ROWS, config["seed"]) if shard else tensors.tensors
    selector = BestGenerator(*scored, spec.noise_dim, config.get("patience"), config["seed"])

    gan_epochs, total = config["epochs"], _stage_epochs(config)
    report_every = config.get("report_every", 1)
    encoder = None  # the f-AnoGAN phase's trainer, made when the GAN is done

    warm = _warm_start(stage, trainer, resumed=resume_from is not None)

    def encoder_trainer() -> EncoderTrainer:
        net = ray.train.torch.prepare_model(build_encoder(spec), parallel_strategy_kwargs=ddp)
        made = EncoderTrainer(net, *selector.best_models(trainer))
        if "encoder" in warm:  # (a resumed encoder phase then loads its own checkpoint over it)
            made.load_state_dict(warm["encoder"])
        return made

    # gan_trained: GAN epochs actually trained (fewer than planned if stopped early)
    start, gan_trained, encoder = _resume(resume_from, trainer, selector, gan_epochs, encoder_trainer, rank)

    logger = _MlflowLogger(config) if rank == 0 and config.get("mlflow_run_id") else None
    if logger and stage.index == 0:
        logger.client.set_tag(logger.run_id, "gen_factory.nodes", str(nodes))
    stopped = False  # the GAN phase ended early: skip its remaining epochs
    seconds = {"gan": 0.0, "encoder": 0.0}  # this attempt's epoch time per phase (pipeline's timing)
    state = resume_from if rank == 0 else None  # a stage done before a restart trains nothing more
    for epoch in range(start, total):
        if stopped and epoch < gan_epochs:
            continue
        started = time.time()
        # Re-seed per epoch so a resumed run draws the same noise as an uninterrupted one.
        torch.manual_seed(config["seed"] * 100_003 + epoch * 101 + rank)
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        if epoch >= gan_epochs:  # the encoder learns on real rows only: the plain shuffled shards
            encoder = encoder or encoder_trainer()
            metrics = encoder.epoch(loader)
        else:
            rows = shard or tensors
            metrics = trainer.epoch(_gan_batches(loader, rows, sampler, config, epoch, rank, world))
        if epoch < gan_epochs:
            gan_trained = epoch + 1
        metrics["epoch"] = epoch + 1
        metrics["epoch_seconds"] = time.time() - started
        seconds["gan" if epoch < gan_epochs else "encoder"] += metrics["epoch_seconds"]
        if (epoch + 1) % report_every and epoch + 1 not in (gan_epochs, total):
            continue  # small epochs: a report (and checkpoint) each time would cost more than the epoch
        if epoch < gan_epochs:
            stopped = _select(selector, trainer, metrics, epoch + 1, gan_epochs, rank, world)
        if logger:  # rank 0 only; the driver shows progress from the report (gen_factory.train.watch)
            grid_from = trainer if epoch < gan_epochs else None
            logger.log(metrics, epoch + 1, grid_from, spec, len(data.label_names))
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                state = {"trainer": trainer.state_dict(), "epoch": epoch, "selection": selector.state_dict(),
                         "gan_epochs": gan_epochs, "gan_epochs_done": gan_trained,
                         "gan_finished": stopped or epoch + 1 >= gan_epochs, "seconds": dict(seconds),
                         "stage": stage.index, **({"first": stage.first} if stage.index else {})}
                if encoder:
                    state["encoder"] = encoder.state_dict()
                torch.save(state, Path(tmp) / STATE_FILE)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            progress = {"stage": stage.index, "run_epoch": stage.offset + epoch + 1,
                        "stage_gan_epochs": gan_epochs}
            ray.train.report({**metrics, **progress}, checkpoint=checkpoint)
    networks = {"trainer": trainer.state_dict(), **({"encoder": encoder.state_dict()} if encoder else {})}
    return state, networks


def _warm_start(stage: Stage, trainer: GANTrainer, resumed: bool) -> dict:
    """A warm stage's GAN goes on from the previous stage's networks (loaded into `trainer` here; a
    resumed stage has its own checkpoint instead); its encoder, whenever it is made (resumed mid-GAN
    too), from the previous stage's encoder: returns those networks ({} for a stage from noise). Every
    rank holds the same last state of the previous stage: nothing to broadcast."""
    warm = stage.warm or {}
    if warm and not resumed:
        trainer.load_state_dict(warm["trainer"])
    return warm


def _select(selector: BestGenerator, trainer: GANTrainer, metrics: dict, done: int, gan_epochs: int,
            rank: int, world: int) -> bool:
    """Score the EMA generator after `done` GAN epochs (into `metrics`), keep it if it is the best so
    far; True when patience ends the GAN phase early."""
    metrics["train_frechet"] = _shared_distance(selector, trainer, rank, world)
    selector.record(trainer, done, metrics["train_frechet"])
    stopped = selector.stop and done < gan_epochs
    if stopped and rank == 0:
        print(f"stopping the GAN early at epoch {done}: no better generator in {selector.patience} reports "
              f"(best: epoch {selector.best['epoch']})", flush=True)
    return stopped


def _shared_distance(selector: BestGenerator, trainer: GANTrainer, rank: int, world: int) -> float:
    """Rank 0 scores the EMA generator and every worker gets its figure, so all keep the same best."""
    device = next(trainer.g_ema.parameters()).device  # nccl broadcasts CUDA tensors, gloo CPU ones
    value = torch.tensor(
        [selector.distance(trainer.g_ema) if rank == 0 else 0.0], dtype=torch.float64, device=device
    )
    if world > 1:
        torch.distributed.broadcast(value, src=0)
    return float(value.item())


def _count_nodes(world: int) -> int:
    """How many distinct Ray nodes the workers run on (gathered over the DDP process group)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    if world == 1:
        return 1
    nodes: list = [None] * world
    torch.distributed.all_gather_object(nodes, node)
    return len(set(nodes))


def _quiet_ray_train_reports() -> None:
    """Drop Ray Train's two INFO lines per report (one of its loggers is named by file path)."""
    from ray.train.v2._internal.execution import context

    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


class _MlflowLogger:
    """Rank-0 logging into the run the driver opened: per-epoch losses and, for images, a sample grid."""

    def __init__(self, config: dict):
        from mlflow import MlflowClient

        self.client = MlflowClient(config["mlflow_tracking_uri"])
        self.run_id = config["mlflow_run_id"]
        self.grid_every = config.get("grid_every", 1)
        self.prefix = config.get("metric_prefix", "")  # the refit on every row logs beside the first fit

    def log(
        self, metrics: dict, step: int, trainer: GANTrainer | None, spec: ModelSpec, n_labels: int
    ) -> None:
        """`trainer` is None in the encoder phase: the samples no longer change."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(self.prefix + k, float(v), now, step)
                                                    for k, v in metrics.items() if k != "epoch"])
        if trainer and spec.kind == "image" and step % self.grid_every == 0 and not self.prefix:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"epoch_{step:04d}.png"
                save_sample_grid(trainer.g_ema, spec.noise_dim, n_labels, path)
                self.client.log_artifact(self.run_id, str(path), "samples")


@torch.no_grad()
def save_sample_grid(generator: torch.nn.Module, noise_dim: int, n_labels: int, path: Path,
                     per_label: int = 10) -> None:
    """One row per label, `per_label` samples each, from a fixed noise so epochs are comparable."""
    from PIL import Image

    rng = torch.Generator().manual_seed(1234)
    labels = torch.arange(n_labels).repeat_interleave(per_label)
    noise = torch.randn(len(labels), noise_dim, generator=rng)
    pixels = generator(noise, labels).cpu().numpy()  # [-1, 1]
    c, h, w = pixels.shape[1:]
    grid = (
        pixels.reshape(n_labels, per_label, c, h, w)
        .transpose(0, 3, 1, 4, 2)
        .reshape(n_labels * h, per_label * w, c)
    )
    grid = ((grid + 1) * 127.5).clip(0, 255).astype(np.uint8)
    scale = max(1, 32 // h)
    image = Image.fromarray(grid[..., 0] if c == 1 else grid).resize(
        (per_label * w * scale, n_labels * h * scale), Image.NEAREST
    )
    image.save(path)
