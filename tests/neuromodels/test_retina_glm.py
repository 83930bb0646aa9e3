"""GLM with a constrained stimulus filter (Pillow et al. 2008): basis, assembly, STA start, fit on sample:retina."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromodels._history import history_view
from neuromodels.errors import ConfigError
from neuromodels.fitting.estimator import init_glm_from_sta, spike_triggered_average
from neuromodels.fitting.retina_data import RetinaDataset
from neuromodels.retina import GLM, raised_cosine_basis


def test_raised_cosine_basis_tiles_log_time():
    raw = raised_cosine_basis(6, 40, offset=2.0, normalize=False)  # (lag, bump)
    assert raw.shape == (40, 6) and (raw >= 0).all() and (raw <= 1).all()
    peaks = raw.argmax(0)
    # each bump spans four spacings: between the second and the second-to-last centre they sum to 2
    inner = slice(int(peaks[1]), int(peaks[-2]) + 1)
    torch.testing.assert_close(raw.sum(1)[inner], torch.full((inner.stop - inner.start,), 2.0), atol=1e-5, rtol=0)
    assert peaks[0] == 0 and peaks[-1] == 39
    gaps = torch.diff(peaks)
    assert (gaps[1:] >= gaps[:-1]).all() and gaps[-1] > 2 * gaps[0]  # log-stretched: wider at long lags
    unit = raised_cosine_basis(6, 40)
    torch.testing.assert_close(unit.norm(dim=0), torch.ones(6))
    with pytest.raises(ConfigError):
        raised_cosine_basis(0, 40)


def test_constrained_filter_is_the_linear_filter_it_reports():
    """exp(GLM) with silent history: log rate = <filters, window> + b, for every constraint (7x9 frames, d=2)."""
    torch.manual_seed(0)
    x = torch.randn(5, 6, 7, 9)
    silent = torch.zeros(5, 3, 2)
    for options in (
        {"rank": 2},
        {"spatial_downsample": 2},
        {"temporal_basis": 3},
        {"rank": 1, "spatial_downsample": 2, "temporal_basis": 4},
    ):
        glm = GLM(2, history=6, frame_shape=(7, 9), spike_history=3, **options)
        with torch.no_grad():
            for p in glm.parameters():
                p.normal_(0.0, 0.3)  # keeps the drive below exp's clamp at 20
            glm.history_filter.zero_()
        assert glm.filters.shape == (2, 6, 7, 9)
        expected = x.flatten(1) @ glm.filters.flatten(1).T + glm.stimulus_bias.detach()
        torch.testing.assert_close(torch.log(glm(x, silent)), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(glm.stimulus_drive(x), expected, rtol=1e-4, atol=1e-4)
        assert GLM(**glm.config()).config() == glm.config()
    small = GLM(1, rank=2, spatial_downsample=2, temporal_basis=8)
    assert small.spatial.numel() + small.temporal.numel() == 2 * (25 * 25 + 8)  # vs 100,000 unconstrained
    with pytest.raises(ConfigError):
        GLM(1, spatial_downsample=0)
    with pytest.raises(ConfigError):
        GLM(1, history=10, temporal_basis=11)


def test_sta_start_truncates_to_the_rank():
    glm = GLM(2, history=5, frame_shape=4, rank=1, spatial_downsample=2, temporal_basis=3)
    temporal = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.3, -1.0]])
    spatial = torch.randn(2, 4)
    sta = temporal[:, :, None] * spatial[:, None, :]  # rank 1 in (time, coarse pixel)
    glm.init_stimulus_filter(sta.flatten(1))
    torch.testing.assert_close(glm._coarse_time_weights().detach(), sta, rtol=1e-5, atol=1e-5)


def _glm_data(seed: int, n: int, history: int, size: int):
    rng = np.random.default_rng(seed)
    movie = rng.standard_normal((n, size, size)).astype(np.float32)
    truth = GLM(1, history=history, frame_shape=size, spike_history=3)
    lags = np.arange(history)[::-1]
    temporal = np.exp(-lags / 2.0) * np.sin(lags / 1.5 + 0.5)
    yy, xx = np.mgrid[:size, :size]
    spatial = np.exp(-((yy - 3.0) ** 2 + (xx - 4.0) ** 2) / 4.0)
    kernel = temporal[:, None, None] * spatial[None]
    kernel = 0.6 * kernel / np.linalg.norm(kernel)
    with torch.no_grad():
        truth.stimulus_filter.weight.copy_(torch.from_numpy(kernel.reshape(1, -1)))
        truth.stimulus_filter.bias.fill_(np.log(0.2))
        truth.history_filter[0, 0] = torch.tensor([-0.3, -0.6, -1.5])
    spikes, _ = truth.simulate(
        history_view(torch.from_numpy(movie), history), generator=torch.Generator().manual_seed(seed)
    )
    counts = np.zeros((n, 1), np.float32)
    counts[history - 1 :] = spikes[0].numpy()
    return movie, counts, kernel


def test_sta_start_finds_the_filter_and_its_gain():
    """On white noise the STA points along the true filter (Bussgang); the fitted gain gives the right rate."""
    movie, counts, kernel = _glm_data(0, 8000, 8, 8)
    ds = RetinaDataset(movie, counts, history=8, spike_history=3)
    glm = GLM(1, history=8, frame_shape=8, spike_history=3, rank=1, temporal_basis=6)
    sta = spike_triggered_average(glm, ds)
    assert sta.shape == (1, 6 * 64)
    init_glm_from_sta(glm, ds)
    learned = glm.filters[0].numpy().ravel()
    assert np.corrcoef(learned, kernel.ravel())[0, 1] > 0.9
    # the gain is fitted by likelihood: the model's mean rate (without history) is the data's
    mean_rate = float(glm.stimulus_drive(ds.batch(np.arange(len(ds)))[0][0]).exp().mean())
    assert mean_rate == pytest.approx(float(counts[7:].mean()), rel=0.05)
    # and the scale is right within a factor 1.5 (the history filter, absent here, lowers the true rate)
    ratio = np.linalg.norm(learned) / np.linalg.norm(kernel)
    assert 0.6 < ratio < 1.5, ratio


# ------------------------------------------------------------------------------ sample:retina (slow)
def _reports_dir():
    import os
    from pathlib import Path

    path = Path(os.environ.get("NEUROMODELS_REPORTS", "reports"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.slow
def test_glm_on_the_virtual_retina_beats_a_constant_rate_and_simulates_its_rates():
    """The estimator's GLM on sample:retina: held-out loss below a constant rate's, its test CC, and simulation.

    Simulation mode (the model feeding back its own spikes) must give the rates the data have on the white
    noise it was fitted to (within 15% per cell), and on the held-out test movie the rates the model itself
    predicts given the recorded spikes (within 15%). The remaining gap to the recorded rates on natural movies
    (up to 2x on the test movie) is the linear stimulus filter's error there, present without any spike
    feedback too, not the feedback: docs/retina.md, "GLM".
    """
    import json

    from neuromodels.analysis.retina_metrics import retina_test_metrics
    from neuromodels.datasets import sample
    from neuromodels.datasets.recording import split
    from neuromodels.fitting.estimator import RetinaEstimator

    torch.set_num_threads(1)
    rec = sample("retina")
    est = RetinaEstimator("glm", seed=0).fit(rec)
    train, test = split(rec, "train"), split(rec, "test")

    def poisson(rate, counts):
        return float(np.mean(rate - counts * np.log(rate + 1e-8)))

    counts = test["response"].values.astype(np.float64)  # repeat 0 of the test trials
    conditional = est.predict(test, response=test["response"]).values
    constant = np.broadcast_to(train["response"].values.mean(0), counts.shape)
    loss_glm, loss_constant = poisson(conditional, counts), poisson(constant, counts)
    metrics = est.evaluate(rec, retina_test_metrics)  # prediction = mean of simulated trials
    simulated_test = est.predict(test).values
    simulated_train = est.predict(train).values
    recorded_test = np.nanmean(rec["trials"].sel(time=test["time"]).values, axis=(0, 1))
    ratio_train = simulated_train.mean(0) / train["response"].values.mean(0)
    white = np.asarray(train["stimulus_kind"].values).astype(str) == "checkerboard"
    ratio_white = simulated_train[white].mean(0) / train["response"].values[white].mean(0)
    ratio_feedback = simulated_test.mean(0) / conditional.mean(0)
    ratio_test = simulated_test.mean(0) / recorded_test
    numbers = {
        "test_loss_glm": loss_glm,
        "test_loss_constant_rate": loss_constant,
        "cc": metrics["cc"].values.tolist(),
        "median_cc": float(metrics["cc"].median()),
        "median_cc_norm": float(metrics["cc_norm"].median()),
        "simulated_over_recorded_rate_train": ratio_train.tolist(),
        "simulated_over_recorded_rate_train_checkerboard": ratio_white.tolist(),
        "simulated_over_conditional_rate_test": ratio_feedback.tolist(),
        "simulated_over_recorded_rate_test": ratio_test.tolist(),
        "epochs_run": len(est.history_),
        "model_config": est.model_.config(),
    }
    out = _reports_dir()
    (out / "retina_glm.json").write_text(json.dumps(numbers, indent=2) + "\n")
    from neuromodels._figures import new_figure, save_figure

    fig, ax = new_figure(figsize=(8, 3))
    t = np.arange(len(counts)) / 100.0
    ax.plot(
        t, np.nanmean(rec["trials"].sel(time=test["time"]).values, axis=0)[:, 6], "k", lw=1, label="recorded (mean)"
    )
    ax.plot(t, simulated_test[:, 6], "C3", lw=1, label="GLM simulation (mean of 20)")
    ax.set(xlabel="test time (s)", ylabel="spikes per 10 ms bin", title=f"GLM, {rec['cell'].values[6]}")
    ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, out / "retina_glm_simulation.png", dpi=100, tight=False)
    print(
        "\n"
        + json.dumps(
            {
                k: (np.round(v, 3).tolist() if isinstance(v, list) else v)
                for k, v in numbers.items()
                if k != "model_config"
            }
        )
    )

    assert loss_glm < loss_constant  # a held-out loss better than a constant rate's (measured 0.410 vs 0.453)
    assert numbers["median_cc"] > 0.4  # measured 0.531 (LN 0.40, CNN 0.72)
    assert np.all(np.abs(ratio_white - 1) < 0.15)  # measured 0.91-1.11
    assert np.all(np.abs(ratio_feedback - 1) < 0.15)  # measured 0.90-1.06
    assert np.median(np.abs(ratio_train - 1)) < 0.1  # whole training movie: measured median 0.04, max 0.22
