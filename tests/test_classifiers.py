"""Tests for tardiff.classifiers: the matmul GRU, training with AUPRC checkpointing, the GBM."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from tardiff.classifiers import (
    CellGRU,
    ClassifierConfig,
    SummaryGBMClassifier,
    TimeSeriesClassifier,
    build_network,
    make_classifier,
    per_sample_loss,
    summary_features,
)
from tardiff.errors import DataError, ParameterError


def easy_data(n, seed, steps=12, n_features=3, shift=1.0):
    """Separable toy set: positives have feature 0 shifted up over the whole series."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    y[:2] = [0, 1]
    X = rng.normal(size=(n, steps, n_features)).astype(np.float32)
    X[:, :, 0] += shift * y[:, None]
    return X, y


@pytest.mark.parametrize("bidirectional", [True, False])
def test_cell_gru_matches_torch_gru(bidirectional):
    gen = torch.Generator().manual_seed(0)
    ref = torch.nn.GRU(5, 6, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    ours = CellGRU(5, 6, 2, bidirectional=bidirectional).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 9, 5, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2 * (2 if bidirectional else 1), 3, 6, generator=gen, dtype=torch.float64)
    for hx in (None, h0):
        out_ref, h_ref = ref(x, hx)
        out, h = ours(x, hx)
        assert out.shape == out_ref.shape and h.shape == h_ref.shape
        torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)
    with ours.fused():  # the fused path (used in training only) is the parent's kernel
        torch.testing.assert_close(ours(x)[0], ref(x)[0])
    assert ours.use_fused is False


def test_gru_double_backward_on_cpu():
    torch.manual_seed(0)
    net = build_network(ClassifierConfig.preset("smoke", "gru"), n_features=3).eval()
    x = torch.randn(4, 7, 3, requires_grad=True)
    loss = per_sample_loss(net(x), torch.tensor([0, 1, 1, 0])).sum()
    params = list(net.parameters())
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * g).sum() for g in grads)
    (gx,) = torch.autograd.grad(dot, x)
    assert gx.shape == x.shape and torch.isfinite(gx).all() and gx.abs().sum() > 0


@pytest.mark.parametrize("arch", ["gru", "cnn", "transformer"])
def test_networks_map_batches_to_logits_for_any_length(arch):
    net = build_network(ClassifierConfig.preset("smoke", arch), n_features=4)
    for steps in (5, 13):
        assert net(torch.zeros(3, steps, 4)).shape == (3,)


@pytest.mark.parametrize("arch", ["gru", "cnn", "transformer"])
def test_fit_reaches_high_auroc_and_checkpoints_best_val_auprc(arch):
    X, y = easy_data(300, seed=1)
    Xv, yv = easy_data(80, seed=2)
    Xt, yt = easy_data(200, seed=3)
    cfg = ClassifierConfig.preset("smoke", arch, epochs=6, patience=3)
    clf = TimeSeriesClassifier(cfg, random_state=0).fit(X, y, Xv, yv)
    auprc = clf.history_["val_auprc"]
    assert len(auprc) == len(clf.history_["train_loss"]) >= 1
    assert int(np.argmax(auprc)) == clf.best_epoch_
    # the kept weights are those of the best epoch
    assert average_precision_score(yv, clf.predict_proba(Xv)[:, 1]) == pytest.approx(auprc[clf.best_epoch_], abs=1e-6)
    assert roc_auc_score(yt, clf.predict_proba(Xt)[:, 1]) > 0.8
    assert not clf.module_.training


def test_early_stopping_stops_after_patience():
    X, y = easy_data(120, seed=4, shift=0.0)  # nothing to learn: validation AUPRC stalls
    Xv, yv = easy_data(60, seed=5, shift=0.0)
    clf = TimeSeriesClassifier(ClassifierConfig.preset("smoke", "cnn", epochs=40, patience=2), random_state=0).fit(X, y, Xv, yv)
    n = len(clf.history_["val_auprc"])
    assert n < 40 and n - 1 - clf.best_epoch_ == 2


def test_predict_proba_rows_sum_to_one_and_determinism_under_seed():
    X, y = easy_data(150, seed=6)
    Xv, yv = easy_data(50, seed=7)
    state = torch.random.get_rng_state()
    cfg = ClassifierConfig.preset("smoke", "gru", epochs=2, dropout=0.2)
    p1 = TimeSeriesClassifier(cfg, random_state=3).fit(X, y, Xv, yv).predict_proba(Xv)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG left untouched
    p2 = TimeSeriesClassifier(cfg, random_state=3).fit(X, y, Xv, yv).predict_proba(Xv)
    p3 = TimeSeriesClassifier(cfg, random_state=4).fit(X, y, Xv, yv).predict_proba(Xv)
    assert p1.shape == (50, 2)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-12)
    assert ((p1 >= 0) & (p1 <= 1)).all()
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_class_weight_and_holdout_validation():
    X, y = easy_data(100, seed=8)
    cfg = ClassifierConfig.preset("smoke", "cnn", epochs=1)
    clf = TimeSeriesClassifier(cfg, class_weight=True, random_state=0).fit(X, y, X, y)
    n_pos = int(y.sum())
    assert clf.pos_weight_ == pytest.approx((len(y) - n_pos) / n_pos)
    assert TimeSeriesClassifier(cfg).fit(X, y, X, y).pos_weight_ == 1.0
    held = TimeSeriesClassifier(cfg, class_weight=True, random_state=0).fit(X, y)  # no validation data: 10% held out
    assert len(held.history_["val_auprc"]) == 1
    assert held.pos_weight_ != clf.pos_weight_  # computed on the remaining 90%


def test_weighted_loss_matches_closed_form():
    logits, y = torch.tensor([0.0, 2.0]), torch.tensor([1, 0])
    out = per_sample_loss(logits, y, pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(out, torch.tensor([3 * np.log(2.0), np.log1p(np.exp(2.0))], dtype=torch.float32))


def test_user_errors():
    X, y = easy_data(40, seed=9)
    clf = TimeSeriesClassifier(ClassifierConfig.preset("smoke"))
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError):
        clf.fit(bad, y, X, y)
    with pytest.raises(DataError):
        clf.fit(X, y, X, np.zeros_like(y))  # one-class validation set
    with pytest.raises(DataError):
        clf.fit(X[:, :, 0], y, X, y)
    with pytest.raises(ParameterError):
        clf.predict_proba(X)  # not fitted
    with pytest.raises(ParameterError):
        ClassifierConfig(arch="lstm")
    with pytest.raises(ParameterError):
        ClassifierConfig(arch="transformer", hidden=10, heads=4)
    with pytest.raises(ParameterError):
        make_classifier("svm", "cpu")
    with pytest.raises(ParameterError):
        make_classifier("gru", "huge")


def test_make_classifier_presets():
    assert make_classifier("gru", "paper").config.hidden == 256
    paper = ClassifierConfig.preset("paper")
    assert (paper.layers, paper.dropout, paper.bidirectional) == (2, 0.2, True)
    assert make_classifier("cnn", "smoke").config.arch == "cnn"
    assert make_classifier("gru", "cpu", epochs=7).config.epochs == 7
    gbm = make_classifier("gbm", "smoke", random_state=5)
    assert isinstance(gbm, SummaryGBMClassifier) and gbm.random_state == 5 and gbm.max_iter == 30


def test_summary_features_closed_form():
    X = np.array([[[1.0, np.nan], [3.0, 2.0], [5.0, np.nan]]])  # (1, 3, 2)
    feats = summary_features(X, ("mean", "min", "max", "last", "std", "slope", "count"))
    # per summary, feature 0 then feature 1
    expected = [3.0, 2.0, 1.0, 2.0, 5.0, 2.0, 5.0, 2.0, np.std([1, 3, 5]), 0.0, 2.0, 0.0, 3.0, 1.0]
    np.testing.assert_allclose(feats[0], expected)
    empty = summary_features(np.full((1, 4, 1), np.nan), ("mean", "last", "slope", "count"))
    assert np.isnan(empty[0, :3]).all() and empty[0, 3] == 0


def test_summary_gbm_fits_and_chooses_iterations_by_val_auprc():
    X, y = easy_data(300, seed=10)
    Xv, yv = easy_data(100, seed=11)
    Xt, yt = easy_data(200, seed=12)
    X[0, 3, 1] = np.nan  # raw data with gaps is fine for the GBM
    gbm = SummaryGBMClassifier(random_state=0, max_iter=40).fit(X, y, Xv, yv)
    assert len(gbm.history_["val_auprc"]) == 40
    assert gbm.best_iter_ == int(np.argmax(gbm.history_["val_auprc"])) + 1 == gbm.model_.n_iter_
    p = gbm.predict_proba(Xt)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert roc_auc_score(yt, p[:, 1]) > 0.8
    again = SummaryGBMClassifier(random_state=0, max_iter=40).fit(X, y, Xv, yv).predict_proba(Xt)
    np.testing.assert_array_equal(p, again)


@pytest.mark.parametrize("name", ["gru", "cnn", "transformer", "gbm"])
def test_classifiers_follow_the_estimator_conventions(name):
    """Parameters (seed, device, class weighting) in __init__, data in fit, clone() works."""
    from sklearn.base import clone

    clf = make_classifier(name, "smoke", random_state=3, class_weight=True)
    params = clf.get_params()
    assert params["random_state"] == 3 and params["class_weight"] is True
    if name != "gbm":
        assert params["device"] == "cpu"
    twin = clone(clf)
    assert twin.get_params()["random_state"] == 3 and twin is not clf
    X, y = easy_data(120, seed=13)
    a = clf.fit(X, y, X[:60], y[:60]).predict_proba(X[:5])
    b = twin.fit(X, y, X[:60], y[:60]).predict_proba(X[:5])
    np.testing.assert_array_equal(a, b)  # same parameters, same model
    assert not hasattr(make_classifier(name, "smoke"), "classes_")  # nothing learned before fit
