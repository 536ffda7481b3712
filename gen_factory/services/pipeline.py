"""Dataset -> Ray Train -> ONNX export -> MLflow registry, as one call (`genfactory train`)."""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from gen_factory import registry, settings
from gen_factory.card import AnomalyCalibration, ModelCard, write_card
from gen_factory.data import load_dataset, training_split
from gen_factory.data.datasets import (
    BUNDLED_IMAGES,
    BUNDLED_TABLES,
    ONE_CLASS_LABEL,
    frame_from_codes,
    keep_labels,
)
from gen_factory.data.transform import encoding_to_dict, fit_encoding
from gen_factory.evaluate.images import image_quality, save_class_grids
from gen_factory.evaluate.quality import quality_report
from gen_factory.evaluate.report import html_report
from gen_factory.evaluate.tables import evaluate_table, headline
from gen_factory.export.bundle import card_for, export_bundle
from gen_factory.export.calibrate import DEFAULT_FPR, calibrate_bundle, flat_metrics, transfer_calibration
from gen_factory.models import ModelSpec, build_models, spec_for
from gen_factory.models.encoder import build_encoder
from gen_factory.models.losses import LOSSES
from gen_factory.models.variants import VARIANTS
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_arrays
from gen_factory.timing import Phases
from gen_factory.train.distributed import REFIT_SETTINGS_FILE, check_resumable, fit, save_sample_grid
from gen_factory.train.encoder import ScoreScales, residual_scales
from gen_factory.train.hyper import Hyper, Recipe, resolve_hyper
from gen_factory.train.loop import GANTrainer
from gen_factory.train.selection import best_models

REPORTS_PER_RUN = 50  # checkpoints per run: more only add Ray round trips on small epochs
# The refit on every row goes on from the split's networks (when both encode the columns alike) for this
# share of a cold refit's epochs: it starts from a trained GAN, not from noise (bench/refit_warm.py).
WARM_REFIT_SHARE = 0.25
# Tables: quality, TSTR and the report are measured on at most this many rows of each side (a seeded
# sample): on a 200k-row table the TSTR forests alone ran past 20 minutes on every row.
EVALUATION_ROWS = 50_000
# Images: the export calibrates the scorer (residual scales, isolation forest, score quantiles,
# attribution) on a seeded sample of at most this many training images. Each pass runs them as one
# batch; on MNIST's 42k the activations alone took the process past 22 GB (killed for memory).
CALIBRATION_IMAGES = 5_000
# Tables: the same, on at most this many training rows: on the million-row table the scorer's calibration
# ran its networks over all 700k rows at once and took the driver past 13 GB. The score quantiles, the
# forest (256-row trees) and the refit's threshold shares need far fewer (bench/RESULTS.md, session 12).
SCORER_CALIBRATION_ROWS = 10_000


@dataclass
class TrainJob:
    """Everything `genfactory train` takes; unset fields get per-kind defaults (`recipe`)."""

    dataset: str
    model_name: str | None = None
    label_column: str | None = "label"  # None: a table without labels, trained as one class (all normal)
    loss: str | None = None
    epochs: int | None = None
    batch_size: int = 64
    num_workers: int = 2
    use_gpu: bool = False
    gpus_per_worker: float = 0.0
    seed: int = 0
    holdout: float = 0.3
    alias: str | None = settings.DEFAULT_ALIAS
    run_name: str | None = None
    variant: str | None = None  # images: vanilla | cgan | dcgan | wgan-gp | sngan | projgan-gp (default)
    normal_labels: list[str] | None = None  # a one-class (anomaly-detection) model of these labels only
    encoder_epochs: int | None = None  # f-AnoGAN encoder epochs after the GAN (default: half the GAN's)
    patience: int | None = (
        None  # end the GAN after this many reports without a better generator (None: never)
    )
    fpr: float = DEFAULT_FPR  # false-positive rate of the anomaly thresholds on held-out normal data
    column_types: dict[str, str] | None = None  # overrides of inferred types, e.g. {"zip": "categorical"}
    max_failures: int = 3  # worker-group restarts (from the latest checkpoint) before the run gives up
    register_again: bool = False  # register a new version even if this run already registered one
    # Tables: after the fit on the split (which measures quality and sets the anomaly thresholds), train
    # the model that ships on every row with the same settings (None: tables yes, images no).
    refit: bool | None = None
    # Reduced-precision generators exported beside fp32 (opt-in: "int8"; `export.precision`).
    precisions: list[str] | None = None
    # The refit goes on from the split's networks for WARM_REFIT_SHARE of the epochs (False: from scratch).
    warm_refit: bool = True
    # Images: the scorer holds its normal training images for `knn` (False: it holds none, and images'
    # ensemble takes the isolation forest as tables' does; `export.bundle.Neighbours`).
    knn_reference: bool = True

    def __post_init__(self):
        from gen_factory.data.validate import DataValidationError

        if self.loss is not None and self.loss not in LOSSES:
            raise DataValidationError("loss", repr(self.loss), f"choose one of {', '.join(LOSSES)}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise DataValidationError("variant", repr(self.variant), f"choose one of {', '.join(VARIANTS)}")
        for field, value, low in (
            ("epochs", self.epochs, 1),
            ("batch_size", self.batch_size, 2),
            ("num_workers", self.num_workers, 1),
            ("encoder_epochs", self.encoder_epochs, 1),
            ("patience", self.patience, 1),
            ("max_failures", self.max_failures, 0),
        ):
            if value is not None and value < low:
                raise DataValidationError(field, value, f"use a whole number >= {low}")
        for column, kind in (self.column_types or {}).items():
            if kind != "categorical":
                raise DataValidationError(
                    f"column_types[{column!r}]",
                    repr(kind),
                    "use 'categorical' (numbers are inferred continuous, strings categorical)",
                )
        if not 0 < self.holdout < 1:
            raise DataValidationError("holdout", self.holdout, "use a fraction between 0 and 1, e.g. 0.3")
        if not 0 < self.fpr < 1:
            raise DataValidationError("fpr", self.fpr, "use a false-positive rate between 0 and 1, e.g. 0.05")
        if self.label_column is None:
            if self.normal_labels not in (None, [ONE_CLASS_LABEL]):
                raise DataValidationError("normal_labels", repr(self.normal_labels),
                                          "a table without labels is one class already: drop --normal-label")
            self.normal_labels = [ONE_CLASS_LABEL]
        if self.dataset not in BUNDLED_IMAGES + BUNDLED_TABLES:
            self.dataset = str(Path(self.dataset).resolve())  # every worker must find the same file
        self.model_name = self.model_name or f"{Path(self.dataset).stem}-cgan"
        self.run_name = self.run_name or self.model_name

    def recipe(self, kind: str, rows: int) -> Recipe:
        """This job's settings for `rows` training rows of `kind` data (`train.hyper.resolve_hyper`)."""
        return resolve_hyper(kind, rows, self.batch_size, loss=self.loss, variant=self.variant,
                             one_class=bool(self.normal_labels), epochs=self.epochs,
                             encoder_epochs=self.encoder_epochs)


@dataclass
class Prepared:
    """A job's validated data and settings: everything decided before any lock, Ray or MLflow. The
    `counts` are the whole sets'; a large table's sets may be samples once training starts
    (`_keep_samples`)."""

    data: object
    train: object
    holdout: object
    encoding: object
    recipe: Recipe
    spec: ModelSpec
    config: dict
    counts: Counts


@dataclass(frozen=True)
class Counts:
    """How many rows the dataset, its training set (per label) and its hold-out have: what the card says."""

    given: int
    held_out: int
    per_label: list[int]  # training rows per label

    @property
    def trained(self) -> int:
        return sum(self.per_label)


@dataclass
class Fitted:
    """One Ray Train fit, restored: the generator (for sample grids), the final state (for the selection
    figures) and how many rows trained it."""

    generator: torch.nn.Module
    state: dict
    rows: int


def prepare(job: TrainJob, holdout_fraction: float | None = None, data=None) -> Prepared:
    """Load and validate the data, split it and settle the settings; all input errors surface here.
    `holdout_fraction` 0 prepares the refit on every row (the job's own fraction otherwise); `data`,
    already loaded for this job, is not read again."""
    categorical = sorted(job.column_types or {})
    data = data if data is not None else load_dataset(job.dataset, job.label_column, categorical)
    fraction = job.holdout if holdout_fraction is None else holdout_fraction
    train, holdout = training_split(data, fraction, job.seed, job.normal_labels)
    encoding = fit_encoding(train)
    recipe = job.recipe(data.kind, len(train.labels))
    spec = spec_for(train, encoding, **recipe.networks)
    config = {
        "dataset": job.dataset, "label_column": job.label_column, "holdout": fraction, "seed": job.seed,
        "normal_labels": job.normal_labels, "batch_size": job.batch_size, **_epochs_config(recipe),
        "patience": job.patience, "encoding": encoding_to_dict(encoding),
        "spec": asdict(spec), "hyper": asdict(recipe.hyper), "mlflow_tracking_uri": settings.tracking_uri(),
        **({"categorical": categorical} if categorical else {}),  # absent: runs from before overrides resume
    }
    counts = Counts(len(data.labels), len(holdout.labels),
                    np.bincount(train.labels, minlength=len(train.label_names)).tolist())
    return Prepared(data, train, holdout, encoding, recipe, spec, config, counts)


def _keep_samples(prep: Prepared, seed: int) -> None:
    """Once a table's training is prepared, the driver needs samples only: the workers read their rows
    from the file themselves, and the export, evaluation and calibration take at most EVALUATION_ROWS
    of each set. So a large table's sets become those samples (in place: the caller's reference must
    not keep the whole arrays alive); on 1M x 100 that frees 0.75 GiB of the driver."""
    if prep.data.kind == "table":
        prep.data, prep.train, prep.holdout = (_at_most(d, EVALUATION_ROWS, seed)
                                               for d in (prep.data, prep.train, prep.holdout))


def _epochs_config(recipe: Recipe) -> dict:
    epochs, encoder_epochs = recipe.epochs, recipe.encoder_epochs
    return {"epochs": epochs, "encoder_epochs": encoder_epochs,
            "report_every": max(1, round((epochs + encoder_epochs) / REPORTS_PER_RUN))}


def prepare_refit(job: TrainJob, split: Prepared) -> Prepared:
    """The refit on every row. Warm (`job.warm_refit`): it goes on from the split's last networks for
    WARM_REFIT_SHARE of the epochs, where both have the same ModelSpec (network shapes and, for tables,
    the encoded column layout); cold, from scratch and for all the epochs, where they do not (a column
    missing only in held-out rows gains a missing-value flag on every row: categories come from the
    whole table, so they never differ)."""
    every = prepare(job, holdout_fraction=0.0, data=split.data)
    if not (job.warm_refit and every.spec == split.spec):  # (a table's spec holds its column layout)
        return every
    recipe = replace(every.recipe, epochs=math.ceil(WARM_REFIT_SHARE * every.recipe.epochs),
                     encoder_epochs=math.ceil(WARM_REFIT_SHARE * every.recipe.encoder_epochs))
    config = {**every.config, **_epochs_config(recipe), "warm_start": True}
    return replace(every, recipe=recipe, config=config)


def train_and_register(job: TrainJob, log=print) -> dict:
    """Validate, train on Ray, export, evaluate and register; returns a summary with the model ref.

    One process at a time trains a run name (`gen_factory.registry.runs.run_lock`, taken before Ray or MLflow;
    a second gets RunBusy). Holding it, an MLflow run left RUNNING by a killed attempt is marked
    KILLED, and a run that already registered a version for these epochs is reported finished instead
    of registering the same model again (unless `job.register_again`). A model whose figures are not
    finite is registered without the alias (`champion_veto`).
    """
    from gen_factory.registry.runs import run_lock

    started, phases = time.time(), Phases()
    with phases.phase("prepare"):
        prep = prepare(job)  # all input errors surface before the lock, Ray or MLflow
    with run_lock(job.run_name):
        check_resumable(prep.config, job.run_name, settings.ray_storage())  # other settings: refused here
        previous = _close_stale_attempt(job.run_name, log)
        if previous is not None and not job.register_again:
            done = registry.version_for(previous.info.run_id, job.model_name,
                                        (prep.recipe.epochs, prep.recipe.encoder_epochs), at_least=True)
            if done is not None:
                return _already_finished(job, previous, done, started, log)
        return _train_locked(job, prep, started, phases, log)


def _close_stale_attempt(run_name: str, log):
    """The run's MLflow run, if any; one still RUNNING was left so by an attempt that died (the caller holds
    the run's lock, so none is in it now): mark it KILLED, say so."""
    previous = registry.find_run(run_name)
    if previous is not None and previous.info.status == "RUNNING":
        killed = registry.mark_killed(previous.info.run_id)
        log(f"[train] run {run_name!r}: an earlier attempt ended without closing MLflow run "
            f"{previous.info.run_id} (left RUNNING; {killed} such attempt(s) so far); marked it KILLED "
            "and going on from the latest checkpoint")
    return previous


def _already_finished(job: TrainJob, run, version, started: float, log) -> dict:
    """Report a run that registered a version for these epochs; finish a registration a kill cut short."""
    run_id = run.info.run_id
    ref = registry.complete_registration(run_id, version)
    if run.info.status != "FINISHED":
        registry.finish_run(run_id)
    log(f"[train] run {job.run_name!r} is finished: it registered {ref.name} version {ref.version}"
        + (f" (@{ref.alias})" if ref.alias else "") + "; nothing to train. Give more --epochs to train on, "
        "or --register-again to register a new version")
    return {"ref": ref, "run_id": run_id, "metrics": dict(run.data.metrics), "anomaly": {}, "parity": {},
            "epochs": int(version.tags.get(registry.EPOCHS_TAG, 0)), "seconds": time.time() - started,
            "already_registered": True}


def _train_locked(job: TrainJob, prep: Prepared, started: float, phases: Phases, log) -> dict:
    from gen_factory.services.cluster import ensure_ray

    data, hyper, recipe = prep.data, prep.recipe.hyper, prep.recipe
    refit = job.refit if job.refit is not None else data.kind == "table"
    every = prepare_refit(job, prep) if refit else None  # the refit on every row: the run's second stage
    run_id, resumed = registry.start_run(job.run_name, {**asdict(job), "epochs": recipe.epochs,
                                                       **asdict(hyper), "kind": data.kind,
                                                       "rows": prep.counts.trained})
    names = prep.train.label_names
    log(
        f"[train] {data.kind} dataset {data.name!r}: {prep.counts.trained} training rows"
        + (f" (then every one of the {prep.counts.given} rows, {_refit_start(every)})" if every else "")
        + f", {len(names)} labels" + (f" (one-class: {', '.join(names)} normal)" if job.normal_labels else "")
        + f"; loss={hyper.loss}, epochs={recipe.epochs} + {recipe.encoder_epochs} encoder, "
        f"workers={job.num_workers}; MLflow run {run_id}"
        + (" (resumed)" if resumed else "")
    )
    for prepared in (prep, every) if every else (prep,):
        _keep_samples(prepared, job.seed)
    data, train, holdout = prep.data, prep.train, prep.holdout
    try:
        with phases.phase("ray_start"):
            ensure_ray()
        if every:
            check_resumable(every.config, job.run_name, settings.ray_storage(), REFIT_SETTINGS_FILE)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            with phases.phase("fit"):
                state = _fit(job, prep, every, run_id)
            first, model, parity = _export_fit(job, prep, state.get("first", state), run_id, tmp / "model",
                                               phases)
            train_seconds = time.time() - started
            # The refit's export before the evaluation: on a large table its transients then sit on the
            # driver's lower floor (the evaluation keeps 0.3 GiB of a 1M-row table's; bench/RESULTS.md)
            refit = every and _export_fit(job, every, state, run_id, tmp / "refit", phases, named="refit_")
            with phases.phase("evaluate"):
                metrics = evaluate_bundle(model, train, holdout, job.seed, report=tmp / "report.html")
            calibration = _calibration_rows(train, job.seed)  # the training rows the scorer saw at export
            with phases.phase("calibrate"):
                detection = calibrate_bundle(model, calibration, holdout, job.fpr, job.seed)
            with phases.phase("log_artifacts"):
                _log_artifacts(job, data.kind, first, model, metrics, run_id, tmp, log)
            shipped, bundle = first, tmp / "model"
            if refit:  # the split measured the model; the one that ships trained on every row
                shipped, refitted, parity = refit
                with phases.phase("refit_calibrate"):
                    detection = transfer_calibration(detection, model, calibration, refitted,
                                                     _calibration_rows(every.train, job.seed))
                if changed := _parts_changed(model.card, refitted.card):
                    log(changed)
                model, bundle = refitted, tmp / "refit"
            write_card(bundle, ModelCard.model_validate({
                **model.card.model_dump(), "metrics": metrics, "anomaly": detection.model_dump(),
                "rows_given": prep.counts.given, "rows_trained": shipped.rows,
                "report_rows": prep.counts.held_out}))
            veto = champion_veto(metrics, _selected(shipped.state))
            if veto and job.alias:
                log(f"[train] WARNING: registering without @{job.alias}: {veto}")
            with phases.phase("register"):
                flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
                registry.log_metrics(run_id, {
                    **flat, **flat_metrics(detection), "train_seconds": train_seconds,
                    **_selected(shipped.state), **{f"onnx_parity_{k}": v for k, v in parity.items()}})
                ref = registry.register(run_id, bundle, job.model_name, None if veto else job.alias,
                                        description=f"conditional GAN on {data.name} ({data.kind})",
                                        epochs=(recipe.epochs, recipe.encoder_epochs),
                                        again=job.register_again)
        registry.log_metrics(run_id, {f"seconds_{k}": v for k, v in phases.seconds.items()})
        registry.finish_run(run_id)
    except BaseException:
        registry.finish_run(run_id, failed=True)
        raise
    log(f"[train] registered {ref.name} version {ref.version}" + (f" as @{ref.alias}" if ref.alias else "")
        + f" in {time.time() - started:.0f}s; quality: {_headline(metrics)}" + _detection_line(detection)
        + _ensemble_line(model.card))
    return {
        "ref": ref,
        "run_id": run_id,
        "metrics": metrics,
        "anomaly": detection.model_dump(exclude_none=True),
        "parity": parity,
        "epochs": recipe.epochs,
        "rows_trained": shipped.rows,
        "seconds": time.time() - started,
        "phases": phases.rounded(),
        **({"champion_veto": veto} if veto else {}),
    }


def _refit_start(every: Prepared) -> str:
    epochs = f"{every.recipe.epochs} + {every.recipe.encoder_epochs} encoder epochs"
    return f"going on from the split's networks for {epochs}" if every.config.get("warm_start") \
        else f"from scratch for {epochs}"


def _fit(job: TrainJob, prep: Prepared, every: Prepared | None, run_id: str) -> dict:
    """One Ray Train run: `prep`'s model, then (if given) `every`'s, the refit on every row, as its second
    stage in the same worker group. Returns the final state (the first fit's under `first` if refit)."""
    config = {**prep.config, "mlflow_run_id": run_id, "metric_prefix": ""}
    if every:
        config["refit"] = {**every.config, "mlflow_run_id": run_id, "metric_prefix": "every_row_"}
    gpus = job.gpus_per_worker or (1.0 if job.use_gpu else 0.0)
    return fit(config, job.run_name, job.num_workers, gpus, settings.ray_storage(), job.max_failures)


def _export_fit(job: TrainJob, prep: Prepared, state: dict, run_id: str, out: Path, phases: Phases,
                named: str = "") -> tuple[Fitted, OnnxModel, dict]:
    """Restore the fit of `prep` from its final `state` and export it to `out`: (the fit's networks and
    state, the exported model, its parity figures). The refit's phases are `named` "refit_"."""
    recipe, spec = prep.recipe, prep.spec
    for part, seconds in state.get("seconds", {}).items():  # rank 0's epochs, inside the fit
        phases.add(f"{named}{part}_epochs", seconds)
    generator, discriminator, encoder = _restore(spec, recipe.hyper, state)
    card = card_for(prep.train, spec, prep.encoding, label_counts=prep.counts.per_label,
                    model_name=job.model_name, dataset=prep.data.name,
                    loss=recipe.hyper.loss, variant=recipe.variant, epochs=recipe.epochs,
                    encoder_epochs=recipe.encoder_epochs, warm_start=bool(prep.config.get("warm_start")),
                    seed=job.seed, mlflow_run_id=run_id,
                    **_selected(state))
    with phases.phase(f"{named}export"):
        scales = _residual_scales(encoder, generator, discriminator, prep.encoding, prep.train, job.seed)
        parity = export_bundle(generator, discriminator, encoder, scales, prep.encoding, card, out,
                               precisions=tuple(job.precisions or ()), knn_reference=job.knn_reference)
    # What ships is evaluated, calibrated and sampled as served: through the exported graphs.
    return Fitted(generator, state, prep.counts.trained), OnnxModel(out), parity


def _log_artifacts(job: TrainJob, kind: str, fitted: Fitted, model: OnnxModel, metrics: dict, run_id: str,
                   tmp: Path, log) -> None:
    """The first fit's report (tables with a label) or sample grids (images) into the MLflow run."""
    if (tmp / "report.html").exists():
        registry.log_artifact(run_id, tmp / "report.html")
    if kind != "image":
        return
    spec = model.card
    save_sample_grid(fitted.generator, spec.noise_dim, spec.n_labels, tmp / "final_samples.png")
    registry.log_artifact(run_id, tmp / "final_samples.png")
    _log_class_grids(model, run_id, tmp / "classes", job.seed)
    if metrics.get("mode_collapse"):
        log("[train] WARNING: possible mode collapse in class(es) "
            f"{', '.join(metrics['mode_collapse'])}: "
            "their samples are far less diverse than the real ones (see diversity_ratio_*)")


# What a non-finite figure usually means, and what to change.
_VETO_FIXES = {
    "selected_train_frechet": "no generator was measured against the training rows; give more rows per label",
    "dcr_ratio": "held-out rows sit exactly on training rows (constant or duplicated rows); give varied rows",
}


def champion_veto(metrics: dict, selected: dict) -> str | None:
    """Why this model must not become the alias's version, or None.

    A selection figure that is not finite means no generator was ever measured better than another
    (the first one shipped unexamined); a quality figure that is NaN or infinite means the evaluation
    had nothing to compare. Either way the version is still registered, so it can be inspected and
    pulled as NAME/VERSION, but the alias (what serving and `pull NAME` use) stays where it was.
    """
    figures = [("selected_train_frechet", selected.get("selected_train_frechet"))]
    figures += [(key, metrics.get(key)) for key in _HEADLINE_KEYS + ("column_shapes", "column_pair_trends")]
    for key, value in figures:
        if isinstance(value, (int, float)) and not np.isfinite(value):
            fix = _VETO_FIXES.get(key, "check for constant or duplicated columns; give more rows per label")
            return f"{key}={value} is not a finite figure -- fix: {fix}"
    return None


def evaluate_bundle(model: OnnxModel, train, holdout, seed: int, per_label: int = 200,
                    report: Path | None = None) -> dict:
    """Quality of what ships: sample the exported ONNX generator and compare with real data.

    Images: `per_label` per class; CAS, label fidelity, Fréchet distance, precision/recall and the
    mode-collapse check (`gen_factory.evaluate.images`). Tables: as many rows per label as the
    training set has (the label is one of the compared columns), scored by `evaluate_table`;
    `report` gets the HTML report. Tables larger than EVALUATION_ROWS are measured on a seeded sample.
    """
    holdout = keep_labels(holdout, train.label_names)  # a one-class model is judged on its own labels
    if train.kind == "table":
        train, holdout = _at_most(train, EVALUATION_ROWS, seed), _at_most(holdout, EVALUATION_ROWS, seed)
    one_class = len(train.label_names) == 1  # no class signal to measure: its figures are the anomaly ones
    if train.kind == "image":
        if one_class:
            return {}
        values, labels = generate_arrays(model, [per_label] * len(train.label_names), seed)
        return image_quality(train.images, train.labels, holdout.images, holdout.labels, values, labels,
                             train.label_names, seed)
    values, labels = generate_arrays(
        model, np.bincount(train.labels, minlength=len(train.label_names)).tolist(), seed
    )
    synth = frame_from_codes(
        values, labels, train.columns, train.categories, train.label_names, train.label_column
    )
    real = train.frame()
    if one_class:
        return {
            k: v
            for k, v in quality_report(real, synth, set(train.categories) | {train.label_column}).items()
            if isinstance(v, float)
        }
    result = evaluate_table(real, synth, holdout.frame(), train.label_column, seed=seed)
    if report is not None:
        report.write_text(html_report(result, real, synth, f"{model.card.model_name}: synthetic vs real"))
    return {**headline(result), "column_shapes_per_column": result["quality"]["shapes"]}


def _at_most(data, rows: int, seed: int):
    """`data` itself, or a seeded sample of `rows` of its rows (in their order)."""
    if len(data.labels) <= rows:
        return data
    return data.subset(np.sort(np.random.default_rng(seed).choice(len(data.labels), rows, replace=False)))


def _log_class_grids(model: OnnxModel, run_id: str, out_dir: Path, seed: int, per_class: int = 64) -> None:
    """One PNG per class from the exported generator, under `evaluation/` in the run (the per-epoch
    grids stay alone in `samples/`)."""
    values, labels = generate_arrays(model, [per_class] * len(model.label_names), seed)
    for path in save_class_grids(values, labels, model.label_names, out_dir, per_class):
        registry.log_artifact(run_id, path, "evaluation")


def _restore(spec: ModelSpec, hyper: Hyper, state: dict) -> tuple[torch.nn.Module, ...]:
    """Rebuild the EMA generator, the discriminator and the f-AnoGAN encoder from the final checkpoint."""
    g, d = build_models(spec)
    trainer = GANTrainer(g, d, hyper, spec.noise_dim)
    trainer.load_state_dict(state["trainer"])
    generator, discriminator = best_models(trainer, state.get("selection"))
    encoder = build_encoder(spec)
    encoder.load_state_dict(state["encoder"]["encoder"])
    return generator, discriminator, encoder.eval()


def _calibration_rows(data, seed: int):
    """The training rows the scorer is calibrated on: a seeded sample of a large set (`_at_most`)."""
    return _at_most(data, CALIBRATION_IMAGES if data.kind == "image" else SCORER_CALIBRATION_ROWS, seed)


def _residual_scales(encoder, generator, discriminator, encoding, train, seed: int = 0) -> ScoreScales:
    train = _calibration_rows(train, seed)
    values = train.features if train.kind == "table" else train.images
    x = torch.from_numpy(encoding.encode(values))
    return residual_scales(encoder, generator, discriminator, x, torch.from_numpy(train.labels))


def _selected(state: dict) -> dict:
    """Which GAN epoch ships (`gen_factory.train.selection`) and its Fréchet distance to the training rows."""
    best = (state.get("selection") or {}).get("best")  # none: a checkpoint from before selection existed
    return {"selected_epoch": best["epoch"], "selected_train_frechet": best["distance"]} if best else {}


def _detection_line(info: AnomalyCalibration) -> str:
    held = info.holdout
    if not held:
        return ""
    return "; anomaly AUROC on the hold-out: " + ", ".join(f"{m}={d['auroc']:.3f}" for m, d in held.items())


def _parts_changed(split: ModelCard, refit: ModelCard) -> str:
    """A line when the refit's default anomaly score sums other parts than the split model's, whose
    hold-out figures the card reports (each model's R^2 decides on its own); else nothing."""
    before, after = split.ensemble, refit.ensemble
    if before is None or after is None or before.parts == after.parts:
        return ""
    return (f"[train] note: the refit's `ensemble` sums {'+'.join(after.parts)} (R²="
            f"{after.reconstruction_r2}), the split model's {'+'.join(before.parts)} (R²="
            f"{before.reconstruction_r2}): the hold-out anomaly figures were measured on the split model's")


def _ensemble_line(card: ModelCard) -> str:
    """Said when the scorer holds training images (`knn`) and when the default anomaly score leaves the
    f-AnoGAN out (`export.bundle.MIN_RECONSTRUCTION_R2`)."""
    parts = card.ensemble
    if parts is None:
        return ""
    held = (f"; the scorer file holds {parts.reference_rows} normal training images for `knn` (train "
            "--no-knn to ship none)" if parts.reference_rows else "")
    if "fanogan" in parts.parts:
        return held
    alone = "the nearest-neighbour distance (knn)" if "knn" in parts.parts else "the isolation forest"
    extra = " with the row's novelty" * ("novelty" in parts.parts) + \
        " and the label contrast" * ("label_contrast" in parts.parts)
    return (f"; anomaly score `ensemble` = {alone}{extra}, without the f-AnoGAN residual: G(E(x)) explains "
            f"R²={parts.reconstruction_r2:.2f} of normal inputs (< {parts.min_reconstruction_r2}), so the "
            "residual would measure their size, not their fit" + held)


_HEADLINE_KEYS = ("cas", "label_fidelity", "frechet_distance", "precision", "recall",
                  "quality", "tstr_accuracy", "real_accuracy", "dcr_ratio")


def _headline(metrics: dict) -> str:
    return ", ".join(f"{k}={metrics[k]:.3f}" for k in _HEADLINE_KEYS if k in metrics)

