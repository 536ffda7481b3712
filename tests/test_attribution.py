"""Attribution: each column's (pixel's) calibrated share of the f-AnoGAN residual, computed inside the
exported ONNX scorer, against a torch reference written out here; and how scoring answers it. Also the
scorer graph's shape: several labels per row, the forest as one tree-ensemble operator."""

import copy
import json
import shutil

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from gen_factory.card import ATTRIBUTION_OUTPUT, CARD_FILE, SCORE_METHODS, SCORER_FILE
from gen_factory.data import DataValidationError, load_dataset
from gen_factory.data.columns import width
from gen_factory.data.datasets import table_from_frame, values_of
from gen_factory.data.transform import fit_encoding
from gen_factory.export.bundle import (
    ATTRIBUTION_QUANTILE,
    KNN_NEIGHBOURS,
    MIN_RECONSTRUCTION_R2,
    PARITY_TOLERANCE,
    PIXEL_SMOOTHING,
    ScoreGraph,
    card_for,
    export_bundle,
    export_onnx,
    extended_cdf,
    parity,
    reconstruction_r2,
    scorer_for,
)
from gen_factory.models import build_models, spec_for
from gen_factory.models.encoder import build_encoder
from gen_factory.runtime import scoring
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.train.encoder import residual_scales


def _bundle(path, data, **export):
    """An untrained model of `data` exported with its normal-data calibration (ScoreScales), so the
    scorer carries the forest and a calibrated attribution."""
    enc = fit_encoding(data)
    spec = spec_for(data, enc, spectral_norm=True)
    torch.manual_seed(0)
    g, d = build_models(spec)
    d(torch.randn(2, *spec.shape), torch.tensor([0, 1]))  # one training-mode pass, as after training
    g, d, encoder = g.eval(), d.eval(), build_encoder(spec).eval()
    x = torch.from_numpy(enc.encode(values_of(data)))
    scales = residual_scales(encoder, g, d, x, torch.from_numpy(data.labels))
    card = card_for(data, spec, enc, model_name="attr", dataset=data.name, loss="hinge", epochs=1, seed=0)
    scorer = scorer_for(d, g, encoder, enc, scales, n_labels=spec.n_labels)  # as export_bundle builds it
    decoded = enc.decoder()(x).detach().numpy()  # is calibrated (what the forest and the sds are fitted on)
    export_bundle(g, d, encoder, scales, enc, card, path, **export)
    return OnnxModel(path), g, encoder, enc, scorer, decoded


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"x": rng.normal(size=n) * 1000, "y": rng.normal(size=n),
                          "city": rng.choice(["lima", "oslo", "pune"], n), "count": rng.integers(0, 10, n),
                          "label": np.repeat(["a", "b"], n // 2)})
    frame.loc[::7, "y"] = np.nan  # a missing flag: two more encoded features of the column
    data = table_from_frame(frame, "label")
    return (*_bundle(tmp_path_factory.mktemp("attr-tab") / "b", data), data)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    data = load_dataset("digits")
    data.images, data.labels = data.images[:300], data.labels[:300]
    return (*_bundle(tmp_path_factory.mktemp("attr-img") / "b", data), data)


def _reference(g, encoder, enc, model, values, labels, scale, train_values):
    """The contributions written out in torch, independently of the graph. x: the encoded values, a
    number past its column's training range extended by one unit per training sd; per encoded
    feature the squared residual of G(E(x), y) against x (conditional) and the squared z-score of x
    against the encoded training values (marginal, sd floored at 1 % of the mean sd); each summed per
    column span (per pixel over channels, then averaged over the pixel's 3x3 neighbourhood inside the
    image with PIXEL_SMOOTHING's weights) and divided by the exported scale; their geometric mean."""
    with torch.no_grad():
        x = enc.encoder()(torch.from_numpy(values))
        rebuilt = g(encoder(x), torch.from_numpy(labels))
        train_x = enc.encoder()(torch.from_numpy(train_values))
    sd = train_x.std(dim=0)
    sd = sd.clamp_min(0.01 * float(sd.mean()))
    if model.kind == "image":
        parts = [(rebuilt - x).pow(2), ((x - train_x.mean(dim=0)) / sd).pow(2)]
        parts = [torch.from_numpy(_smoothed(p.sum(dim=1).numpy())).flatten(1) for p in parts]
    else:
        columns = model.card.encoding.columns
        bounds = np.cumsum([0] + [width(c) for c in columns])
        for j, c in enumerate(columns):
            if c.kind == "continuous":
                v = np.nan_to_num(values[:, j], nan=c.values[0])
                past = np.maximum(v - c.values[-1], 0) - np.maximum(c.values[0] - v, 0)
                x[:, bounds[j]] += torch.from_numpy(past / np.nanstd(train_values[:, j])).float()
        parts = [(rebuilt - x).pow(2), ((x - train_x.mean(dim=0)) / sd).pow(2)]
        parts = [torch.stack([p[:, a:b].sum(dim=1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], 1)
                 for p in parts]
    return torch.sqrt(parts[0] / scale[0] * parts[1] / scale[1]).numpy()


def _smoothed(maps: np.ndarray) -> np.ndarray:
    """[B, H, W] maps, each pixel the PIXEL_SMOOTHING-weighted mean of its 3x3 neighbours in the image."""
    weights = np.outer(PIXEL_SMOOTHING, PIXEL_SMOOTHING)
    h, w = maps.shape[1:]
    padded, inside = np.pad(maps, ((0, 0), (1, 1), (1, 1))), np.pad(np.ones((h, w)), 1)
    total = sum(weights[a, b] * padded[:, a:a + h, b:b + w] for a in range(3) for b in range(3))
    return total / sum(weights[a, b] * inside[a:a + h, b:b + w] for a in range(3) for b in range(3))


@pytest.mark.parametrize("which", ["table", "image"])
def test_onnx_contributions_match_the_torch_reference_and_are_calibrated(request, which):
    model, g, encoder, enc, scorer, decoded, data = request.getfixturevalue(which)
    card = json.loads((model.dir / CARD_FILE).read_text())
    assert card["parity_max_abs_diff"]["scorer"] <= PARITY_TOLERANCE  # both outputs, at export
    assert [o.name for o in model.scorer.get_outputs()] == ["scores", ATTRIBUTION_OUTPUT]
    attribution = model.card.attribution
    assert attribution.quantile == ATTRIBUTION_QUANTILE
    assert attribution.unit == ("column" if which == "table" else "pixel")
    assert attribution.names == (model.card.columns if which == "table" else None)
    values, labels = values_of(data), data.labels.astype(np.int64)
    scale = scorer.attribution.scale
    scored = scoring.score_attributed(model, values, labels)
    units = len(model.card.columns) if which == "table" else 64
    assert scored.contributions.shape == (len(values), units)
    np.testing.assert_allclose(scored.matrix, model.score_raw(values, labels), rtol=1e-6)
    # both scores calibrated on the (normal) training rows: in every column at most about 1 - quantile
    # of them exceed 1 (fewer where a few values repeat: a category, a count), and so many in some
    with torch.no_grad():
        train = torch.from_numpy(decoded)
        parts = scorer.attribution.parts(train, *scorer.scored(train, torch.from_numpy(labels))[1:])
    for part, part_scale in zip(parts.numpy(), scale.numpy(), strict=True):
        share = (part / part_scale > 1.0).mean(axis=0)
        assert share.max() == pytest.approx(1 - ATTRIBUTION_QUANTILE, abs=0.02)
    numbers = [j for j, c in enumerate(model.card.encoding.columns) if c.kind == "continuous"] \
        if which == "table" else slice(None)
    values[::5, numbers] *= 3.0  # some numbers (pixels) past their column's training range
    scored = scoring.score_attributed(model, values, labels)
    expected = _reference(g, encoder, enc, model, values, labels, scale, decoded)
    np.testing.assert_allclose(scored.contributions, expected, rtol=1e-4, atol=1e-4 * expected.max())
    # and the graph agrees with torch on fresh inputs of another batch size
    gen = torch.Generator().manual_seed(3)
    raw = enc.decoder()(torch.randn(19, *model.shape, generator=gen)).detach()
    fresh = torch.randint(0, len(model.label_names), (19,), generator=gen)
    assert parity(scorer, model.dir / SCORER_FILE, (raw, fresh)) <= PARITY_TOLERANCE


def test_best_label_contributions_come_from_the_closest_reconstruction(table):
    model, *_, data = table
    values = values_of(data)[:40]
    scored = scoring.score_attributed(model, values)
    np.testing.assert_array_equal(scored.matrix, scoring.score_matrix(model, values))
    fanogan = model.card.score_methods.index("fanogan")
    per_label = [scoring.score_attributed(model, values, np.full(40, k, np.int64)) for k in range(2)]
    best = np.argmin(np.stack([p.matrix[:, fanogan] for p in per_label], axis=1), axis=1)
    np.testing.assert_array_equal(scored.labels, best)
    expected = np.where(best[:, None] == 0, per_label[0].contributions, per_label[1].contributions)
    np.testing.assert_allclose(scored.contributions, expected, rtol=1e-6)


def test_response_top_k_full_and_none(table):
    model, *_, data = table
    rows = _rows(model, data, 5)
    body = scoring.score_request(model, rows, None, None, None, "top_k", 2)
    assert len(body["top"]) == 5 and all(len(t) == 2 for t in body["top"])
    full = scoring.score_request(model, rows, None, None, None, "full")
    assert full["attribution_columns"] == model.card.columns
    for top, vector in zip(body["top"], full["contributions"], strict=True):
        order = np.argsort(vector)[::-1][:2]
        assert [t["column"] for t in top] == [model.card.columns[j] for j in order]
        assert [t["contribution"] for t in top] == pytest.approx([vector[j] for j in order])
    assert "top" not in scoring.score_request(model, rows, None, None, None, "none")
    for bad in (0, 5):
        with pytest.raises(DataValidationError, match="top_k") as err:
            scoring.score_request(model, rows, None, None, None, "top_k", bad)
        assert "1 to 4" in err.value.fix
    unset = scoring.score_request(model, rows, None, None, None)["top"]
    assert all(len(t) == scoring.DEFAULT_TOP_K for t in unset)


def test_unset_top_k_answers_every_column_of_a_model_with_fewer(tmp_path):
    """The default (3) is not an error for a two-column model, on any path (API, --local, --out)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=80), "y": rng.normal(size=80),
                          "label": np.repeat(["a", "b"], 40)})
    data = table_from_frame(frame, "label")
    model = _bundle(tmp_path / "b", data)[0]
    body = scoring.score_request(model, _rows(model, data, 3), None, None, None)
    assert [len(t) for t in body["top"]] == [2, 2, 2]
    with pytest.raises(DataValidationError, match="top_k"):
        scoring.score_request(model, _rows(model, data, 3), None, None, None, "top_k", 3)


def _rows(model, data, n):
    """The first n rows as the API takes them: {column: value}, categories as strings, null if missing."""
    out = []
    for row in values_of(data)[:n]:
        item = {}
        for spec, v in zip(model.card.encoding.columns, row, strict=True):
            item[spec.name] = None if np.isnan(v) else (spec.categories[int(v)] if spec.kind == "categorical"
                                                         else float(v))
        out.append(item)
    return out


def test_image_map_and_pixel_top_k(image):
    model, *_, data = image
    images = data.images[:3]
    full = scoring.score_request(model, None, images, None, None, "full")
    maps = np.asarray(full["contributions"])
    assert maps.shape == (3, 8, 8)
    top = scoring.score_request(model, None, images, None, None, "top_k", 3)["top"]
    for m, t in zip(maps, top, strict=True):
        r, c = np.unravel_index(np.argmax(m), m.shape)
        assert t[0]["pixel"] == [r, c] and t[0]["contribution"] == pytest.approx(m[r, c])


def test_a_bundle_without_attribution_still_scores_and_says_so(table, tmp_path):
    model, _, _, _, scorer, _, data = table
    old = tmp_path / "old"
    shutil.copytree(model.dir, old)
    scorer = copy.deepcopy(scorer)
    scorer.attribution = None  # the graph as exported before attribution: one output
    raw = torch.from_numpy(values_of(data)[:4])
    export_onnx(scorer, (raw, torch.tensor([0, 1, 0, 1])), old / SCORER_FILE, ["values", "labels"], "scores")
    card = json.loads((old / CARD_FILE).read_text())
    del card["attribution"]
    (old / CARD_FILE).write_text(json.dumps(card))
    legacy = OnnxModel(old)
    assert legacy.card.attribution is None and not scoring.has_attribution(legacy)
    rows = _rows(legacy, data, 3)
    body = scoring.score_request(legacy, rows, None, None, None)
    assert "before attribution" in body["attribution_note"] and "top" not in body
    np.testing.assert_allclose(body["scores"], scoring.score_request(model, rows, None, None, None)["scores"],
                               rtol=1e-6)


@pytest.mark.parametrize("which", ["table", "image"])
def test_every_label_per_row_in_one_call_and_the_forest_as_one_operator(request, which):
    """The graph takes k labels per row: each row's label-free parts (the forest among them) run once,
    and the answers are those of the row repeated k times; the forest is ONNX-ML's TreeEnsembleRegressor,
    scoring as the torch module's own walk does."""
    model, _, _, _, scorer, _, data = request.getfixturevalue(which)
    assert scoring.labels_per_row(model)
    graph = onnx.load(str(model.dir / SCORER_FILE)).graph
    assert [i.name for i in graph.input] == ["values", "labels"]
    assert [n.op_type for n in graph.node].count("TreeEnsembleRegressor") == 1
    values, n_labels = values_of(data)[:30], len(model.label_names)
    every = np.tile(np.arange(n_labels, dtype=np.int64), len(values))
    once = model.scorer.run(None, {"values": values, "labels": every})
    repeated = model.scorer.run(None, {"values": np.repeat(values, n_labels, axis=0), "labels": every})
    for a, b in zip(once, repeated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    iforest = model.card.score_methods.index("iforest")
    with torch.no_grad():
        expected = scorer.forest(torch.from_numpy(values)).numpy()
    np.testing.assert_allclose(once[0][::n_labels, iforest], expected, rtol=1e-6)
    best = scoring.score_attributed(model, values)  # and the runtime feeds it so
    np.testing.assert_allclose(best.matrix, once[0].reshape(len(values), n_labels, -1).min(axis=1), rtol=1e-6)


@pytest.mark.parametrize("which", ["table", "image"])
def test_scoring_in_bounded_calls_answers_as_one_call(request, which):
    """Scoring runs in calls of at most `inputs_per_call` scorer inputs, a row without a label counting
    once per label (every label of MNIST's 18k held-out images in one call held ~18 GB): the pieces
    are that size and the answers those of one call."""
    model, *_, data = request.getfixturevalue(which)
    values, labels = values_of(data)[:50], data.labels[:50].astype(np.int64)
    per_label = 12 // len(model.label_names)
    assert [len(v) for v, _ in scoring.pieces(model, values, None, 12)] == [per_label] * (50 // per_label) + \
        ([50 % per_label] if 50 % per_label else [])
    assert [len(v) for v, _ in scoring.pieces(model, values, labels, 12)] == [12, 12, 12, 12, 2]
    for given in (None, labels):
        whole = scoring.score_attributed(model, values, given, inputs_per_call=10**6)
        small = scoring.score_attributed(model, values, given, inputs_per_call=12)
        np.testing.assert_allclose(small.matrix, whole.matrix, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(small.contributions, whole.contributions, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(small.labels, whole.labels)
        matrix = scoring.score_matrix(model, values, given, inputs_per_call=12)
        np.testing.assert_allclose(matrix, whole.matrix, rtol=1e-5, atol=1e-6)


def test_the_request_limit_is_the_requests_and_in_process_scoring_takes_any_number(table, monkeypatch):
    """A request of more than MAX_INPUTS_PER_REQUEST inputs is refused where it comes in (`prepare`:
    ingress, batching runner, `score --local`); scoring itself goes in bounded calls, so calibration
    scores every held-out row (a million-row table's 300k once failed `train` at that limit)."""
    model, *_, data = table
    values = values_of(data)[:50]
    monkeypatch.setattr(scoring, "MAX_INPUTS_PER_REQUEST", 10)
    rows = data.frame().drop(columns=[data.label_column]).head(11).to_dict(orient="records")
    with pytest.raises(DataValidationError, match="inputs: 11 inputs -- fix: send at most 10 per request"):
        scoring.prepare(model, rows, None, None, None)
    assert scoring.prepare(model, rows[:10], None, None, None)[0].shape == (10, values.shape[1])
    assert len(scoring.score_matrix(model, values)) == 50  # 5x the limit, in this process
    assert len(scoring.score_attributed(model, values).labels) == 50


@pytest.mark.parametrize("which", ["table", "image"])
def test_zero_rows_score_to_empty_answers_of_the_right_shape(request, which):
    """No row in, no row out, shaped as one row's answer (the graph itself cannot take zero rows: its
    label-per-row index divides by the row count)."""
    model, *_, data = request.getfixturevalue(which)
    values = values_of(data)
    one = scoring.score_attributed(model, values[:1])
    for labels in (None, data.labels[:0].astype(np.int64)):
        none = scoring.score_attributed(model, values[:0], labels)
        assert none.matrix.shape == (0, *one.matrix.shape[1:]) and none.labels.shape == (0,)
        assert none.contributions.shape == (0, *one.contributions.shape[1:])
        assert scoring.score_matrix(model, values[:0], labels).shape == (0, *one.matrix.shape[1:])
    with pytest.raises(DataValidationError, match="2 labels for 0 inputs"):
        scoring.score_attributed(model, values[:0], data.labels[:2].astype(np.int64))


def test_reconstruction_r2_is_one_for_a_perfect_rebuild_and_zero_for_the_mean():
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    assert reconstruction_r2(x, torch.zeros_like(x)) == 1.0
    assert abs(reconstruction_r2(x, x.mean(dim=0) - x)) < 1e-6  # every input rebuilt as the mean


def test_an_f_anogan_that_does_not_rebuild_its_inputs_is_left_out_of_the_ensemble(table):
    """An untrained model's G(E(x)) is not x: the default score is then the forest's alone, in torch
    and in the exported graph, and the card says why; the same networks with a high enough R^2 sum
    both scores."""
    model, _, _, _, scorer, decoded, data = table
    assert scorer.reconstruction_r2 < MIN_RECONSTRUCTION_R2
    assert model.card.ensemble.parts == ["iforest", "novelty", "label_contrast"]
    assert model.card.ensemble.reconstruction_r2 == round(scorer.reconstruction_r2, 4)
    parts = (scorer.discriminator, scorer.generator, scorer.encoder, scorer.value_encoder,
             tuple(scorer.scales.tolist()), scorer.forest, scorer.grids, None)
    kept, bare = ScoreGraph(*parts, MIN_RECONSTRUCTION_R2), ScoreGraph(*parts, scorer.reconstruction_r2)
    values, labels = torch.from_numpy(decoded[:50]), torch.from_numpy(data.labels[:50])
    with torch.no_grad():
        shipped, dropped, both = (g.scored(values, labels)[0] for g in (scorer, bare, kept))
    fanogan, forest = extended_cdf(both[:, 1], scorer.grids[0]), extended_cdf(both[:, 2], scorer.grids[1])
    torch.testing.assert_close(dropped[:, 3], forest)
    torch.testing.assert_close(both[:, 3], fanogan + forest)
    # the shipped one adds the label's fit (no training row is novel): never below the forest's
    assert (shipped[:, 3] >= forest - 1e-6).all() and (shipped[:, 3] > forest + 1e-3).any()
    served = scoring.score(model, decoded[:50], data.labels[:50].astype(np.int64), method="ensemble")
    np.testing.assert_allclose(served, shipped[:, 3].numpy(), rtol=1e-4, atol=1e-4)


def test_an_image_scorer_serves_the_distance_to_the_kth_nearest_training_image(image):
    """Images' `knn`: the exported graph's column is the brute-force distance to the 5th-nearest of the
    normal training images (encoded pixels) it holds, whatever label it is scored against; their
    ensemble takes it where tables take the forest. Tables have no such column (test_anomaly)."""
    model, _, _, enc, scorer, decoded, data = image
    card = model.card
    assert card.score_methods == list(SCORE_METHODS) and "knn" in scorer.methods
    assert card.ensemble.parts == ["knn"] and card.ensemble.reference_rows == len(data.labels)
    new = load_dataset("digits").images[300:340].astype(np.float32)  # images the model never saw
    reference = enc.encode(decoded).reshape(len(decoded), -1).astype(np.float64)
    query = enc.encode(new).reshape(len(new), -1).astype(np.float64)
    distances = np.sqrt(((query[:, None, :] - reference[None]) ** 2).sum(axis=2))
    expected = np.sort(distances, axis=1)[:, KNN_NEIGHBOURS - 1]
    knn = card.score_methods.index("knn")
    for labels in (None, np.zeros(len(new), dtype=np.int64)):  # best label, one given label: the same
        served = scoring.score_matrix(model, new, labels)
        np.testing.assert_allclose(served[:, knn], expected, rtol=1e-4)
    grid = scorer.grids[2]
    np.testing.assert_allclose(served[:, card.score_methods.index("ensemble")],
                               extended_cdf(torch.from_numpy(expected).float(), grid).numpy(), atol=1e-4)
    assert grid[0] > 0  # the training images' grid leaves each one out of its own neighbours


def test_without_its_reference_an_image_scorer_holds_no_training_image_and_uses_the_forest(image):
    """`--no-knn`: the scorer file then holds no training image, and images' ensemble is the forest's,
    as tables' is."""
    _, g, encoder, enc, scorer, decoded, data = image
    x = torch.from_numpy(enc.encode(decoded))
    scales = residual_scales(encoder, g, scorer.discriminator, x, torch.from_numpy(data.labels))
    bare = scorer_for(scorer.discriminator, g, encoder, enc, scales, knn_reference=False)
    assert bare.neighbours is None and bare.methods == list(SCORE_METHODS[:4]) and bare.grids.shape[0] == 2
    held = [name for name, _ in bare.named_buffers() if "reference" in name]
    assert bare.ensemble_parts == ["iforest"] and held == []
    assert "neighbours.reference" in dict(scorer.named_buffers())


def test_an_image_bundle_exported_without_knn_says_so_and_its_file_holds_no_image(image, tmp_path):
    data = image[-1]
    bare = _bundle(tmp_path / "bare", data, knn_reference=False)[0]
    card = bare.card
    assert card.score_methods == list(SCORE_METHODS[:4]) and card.ensemble.reference_rows is None
    assert card.ensemble.parts == ["iforest"]
    reference = {(len(data.labels), 64), (64, len(data.labels))}  # the images, or as the graph keeps them

    def shapes(bundle):
        return {tuple(t.dims) for t in onnx.load(str(bundle / SCORER_FILE)).graph.initializer}

    assert not reference & shapes(tmp_path / "bare")
    assert reference & shapes(image[0].dir)  # (the same check finds the reference where there is one)


def test_knn_needs_more_reference_rows_than_k_and_a_large_reference_is_sampled():
    from gen_factory.export.bundle import KNN_REFERENCE_VALUES, Neighbours, _at_most_values

    with pytest.raises(ValueError, match="more than 5 reference rows"):
        Neighbours(torch.zeros(KNN_NEIGHBOURS, 4))
    rows = torch.arange(3 * 4000, dtype=torch.float32).reshape(4000, 3, 1, 1).repeat(1, 1, 32, 32)
    kept = _at_most_values(rows, KNN_REFERENCE_VALUES)
    assert len(kept) == KNN_REFERENCE_VALUES // (3 * 32 * 32) and kept[:, 0, 0, 0].diff().gt(0).all()
    few = rows[:10]
    assert _at_most_values(few, KNN_REFERENCE_VALUES) is few  # under the budget: every row


def test_train_says_when_the_refit_sums_other_parts_than_the_split_model(table):
    from gen_factory.services.pipeline import _parts_changed

    card = table[0].card  # the untrained model's: the forest alone
    kept = card.model_copy(update={"ensemble": card.ensemble.model_copy(
        update={"parts": ["fanogan", "iforest"], "reconstruction_r2": 0.9})})
    assert _parts_changed(card, card) == "" and _parts_changed(kept, kept) == ""
    line = _parts_changed(kept, card)
    assert "the refit's `ensemble` sums iforest" in line and "the split model's fanogan+iforest" in line
