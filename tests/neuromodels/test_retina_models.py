"""Retina models (CNN, LN, GLM), the stimulus-history view and the retina dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuromodels._history import history_view, history_view_numpy, segment_bounds
from neuromodels.errors import ConfigError
from neuromodels.fitting.loop import fit
from neuromodels.fitting.losses import poisson_loss
from neuromodels.fitting.retina_data import RetinaDataset, train_valid_split
from neuromodels.retina import GLM, LNModel, RetinaCNN, ValidConv2d, build_model, conv2d_valid_fft


# ------------------------------------------------------------------------------------------ history view
def test_history_view_equals_the_naive_copy_and_shares_memory():
    movie = torch.randn(30, 4, 5)
    windows = history_view(movie, 7)
    naive = torch.stack([movie[t - 6 : t + 1] for t in range(6, 30)])  # windows ending at frames 6..29
    assert windows.shape == (24, 7, 4, 5)
    assert torch.equal(windows, naive)  # exact here and below: a view and a copy of the same values
    # a view: same storage, window axis steps one frame, nothing copied
    assert windows.untyped_storage().data_ptr() == movie.untyped_storage().data_ptr()
    assert windows.stride()[:2] == (20, 20)
    assert not windows.is_contiguous()

    array = movie.numpy()
    view = history_view_numpy(array, 7)
    assert np.shares_memory(view, array)
    np.testing.assert_array_equal(view, naive.numpy())


def test_dataset_keeps_the_callers_movie_and_gathers_only_batches():
    rng = np.random.default_rng(0)
    movie = rng.standard_normal((200, 6, 6)).astype(np.float32)
    counts = rng.poisson(1.0, (200, 3)).astype(np.float32)
    ds = RetinaDataset(movie, counts, history=10)
    assert ds.stimulus.data_ptr() == movie.ctypes.data  # no copy of the movie at all
    assert ds.windows.untyped_storage().data_ptr() == movie.ctypes.data
    assert len(ds) == 191  # bins 9..199 have a full 10-frame history
    x, y = ds.batch(np.array([0, 5, 190]))
    assert x.shape == (3, 10, 6, 6) and y.shape == (3, 3)
    # exact: gathered copies of the stored frames and counts
    np.testing.assert_array_equal(x[1].numpy(), movie[5:15])  # target bin 14: frames 5..14, current included
    np.testing.assert_array_equal(y[1].numpy(), counts[14])
    item_x, item_y = ds[5]
    assert torch.equal(item_x, x[1]) and torch.equal(item_y, y[1])


def test_padding_gives_every_bin_a_gray_history_and_segments_are_not_crossed():
    movie = np.arange(1, 13, dtype=np.float32).reshape(12, 1, 1) * np.ones((1, 2, 2), np.float32)
    time = np.r_[np.arange(6) * 0.01, 1.0 + np.arange(6) * 0.01]  # two blocks separated by a gap
    assert segment_bounds(time) == [(0, 6), (6, 12)]
    unpadded = RetinaDataset(movie, np.zeros((12, 1)), history=3, time=time)
    np.testing.assert_array_equal(unpadded.ends, [2, 3, 4, 5, 8, 9, 10, 11])
    padded = RetinaDataset(
        movie, np.zeros((12, 1)), history=3, time=time, pad=True, stimulus_mean=1.0, stimulus_std=2.0
    )
    assert len(padded) == 12
    x, _ = padded.batch(np.array([0, 6, 7]))
    raw = x[:, :, 0, 0] * 2.0 + 1.0  # undo the normalisation (exact: small integers and halves, dyadic throughout)
    np.testing.assert_array_equal(raw.numpy(), [[0, 0, 1], [0, 0, 7], [0, 7, 8]])


def test_train_valid_split_holds_out_blocks_and_a_history_gap():
    ds = RetinaDataset(np.zeros((3000, 2, 2), np.float32), np.zeros((3000, 1)), history=40)
    train, valid = train_valid_split(ds, 0.1, block_bins=200)
    assert 0.08 * len(ds) <= len(valid) <= 0.12 * len(ds)
    distance = np.abs(train.ends[:, None] - valid.ends[None, :]).min(axis=1)
    assert distance.min() >= 40
    assert train.windows.data_ptr() == ds.windows.data_ptr()  # subsets share the movie


# -------------------------------------------------------------------------------------------- FFT conv
def test_fft_convolution_equals_conv2d_with_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 17, 13)
    w1 = torch.randn(4, 5, 6, 4, requires_grad=True)
    b1 = torch.randn(4, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    b2 = b1.detach().clone().requires_grad_()
    direct = torch.nn.functional.conv2d(x, w1, b1)
    fft = conv2d_valid_fft(x, w2, b2)
    assert fft.shape == direct.shape == (3, 4, 12, 10)
    torch.testing.assert_close(fft, direct, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(direct)
    (direct * g).sum().backward()
    (fft * g).sum().backward()
    torch.testing.assert_close(w2.grad, w1.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(b2.grad, b1.grad, rtol=1e-4, atol=1e-4)


def test_valid_conv_picks_fft_for_big_kernels_only():
    big = ValidConv2d(40, 8, 15)
    small = ValidConv2d(8, 8, 11)
    x = torch.zeros(1, 40, 20, 20)
    assert big.use_fft(x) and not small.use_fft(torch.zeros(1, 8, 20, 20))
    assert ValidConv2d(40, 8, 15, impl="direct").use_fft(x) is False
    with pytest.raises(ConfigError):
        ValidConv2d(4, 4, 3, impl="winograd")


# --------------------------------------------------------------------------------------------- models
def test_retina_cnn_default_shapes_follow_the_paper():
    model = RetinaCNN(12)
    assert model.map_shapes == [(36, 36), (26, 26)]
    assert model.first_layer_filters.shape == (8, 40, 15, 15)
    assert model.readout.in_features == 8 * 26 * 26
    out = model.eval()(torch.randn(2, 40, 50, 50))
    assert out.shape == (2, 12) and (out > 0).all()
    rebuilt = RetinaCNN(**model.config())
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(ConfigError, match="expects stimulus windows"):
        model(torch.randn(2, 30, 50, 50))
    with pytest.raises(ConfigError, match="do not fit"):
        RetinaCNN(3, frame_shape=(20, 20))


def test_cnn_training_noise_is_off_at_test_time_unless_latent():
    torch.manual_seed(0)
    x = torch.randn(4, 5, 12, 12)
    model = RetinaCNN(2, history=5, frame_shape=12, kernel_sizes=(5, 3), noise_std=0.5)
    model.eval()
    assert torch.equal(model(x), model(x))  # exact: the same call twice
    model.train()
    assert not torch.equal(model(x), model(x))
    latent = RetinaCNN(2, history=5, frame_shape=12, kernel_sizes=(5, 3), noise_std=0.5, latent_noise_std=0.5)
    repeats = latent.sample(x, 6)
    assert repeats.shape == (6, 4, 2)
    assert repeats.std(0).min() > 0  # repeated presentations differ: the latent-noise variant


def test_regularization_is_l2_on_kernels_plus_l1_on_rates():
    model = RetinaCNN(2, history=5, frame_shape=12, kernel_sizes=(5, 3), l2_weight=0.1, l1_activity=0.01)
    output = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    kernels = sum(c.weight.square().sum() for c in model.convs) + model.readout.weight.square().sum()
    expected = 0.1 * kernels + 0.01 * (3.0 + 7.0) / 2
    torch.testing.assert_close(model.regularization(output), expected)


def test_batch_norm_variant_and_bias_init():
    model = RetinaCNN(3, history=5, frame_shape=12, kernel_sizes=(5, 3), batch_norm=True)
    assert model.readout.bias is None
    model.init_output_bias(torch.tensor([0.1, 0.2, 0.3]))
    model.eval()
    with torch.no_grad():
        model.readout.weight.zero_()
    torch.testing.assert_close(
        model(torch.randn(2, 5, 12, 12)), torch.tensor([[0.1, 0.2, 0.3]] * 2), atol=1e-3, rtol=1e-3
    )


def test_saturating_output_is_softplus_below_its_bound_and_never_above_it():
    from neuromodels.retina import SaturatingSoftplus

    out = SaturatingSoftplus(2, max_rate=2.0)
    x = torch.linspace(-6.0, 40.0, 200)[:, None].expand(200, 2)
    y = out(x).detach()
    assert (y <= 2.0).all() and (torch.diff(y, dim=0) >= 0).all()  # bounded by max_rate, increasing
    assert float(y[x[:, 0] < 10.0, 0].max()) < 1.99 and (torch.diff(y[x[:, 0] < 10.0], dim=0) > 0).all()
    small = x[:, 0] < -3.0  # softplus < 0.05: relative gap s / (2 r) < 1.3%
    torch.testing.assert_close(y[small, 0], torch.nn.functional.softplus(x[small, 0]), rtol=0.02, atol=0)
    assert float(y[-1, 0]) == pytest.approx(2.0 * (1 - math.exp(-20.0)), rel=1e-5)  # softplus(40) = 40
    rates = torch.tensor([[0.05, 1.5]])
    torch.testing.assert_close(out(out.inverse(rates)), rates, rtol=1e-5, atol=1e-6)
    # the model starts at the cells' mean rate under a bound given by the data (at least twice the mean)
    model = RetinaCNN(2, history=5, frame_shape=12, kernel_sizes=(5, 3), batch_norm="channel", output="saturating")
    model.init_output_bias(torch.tensor([0.1, 0.4]), max_rate=torch.tensor([3.0, 0.5]))
    torch.testing.assert_close(model.output.max_rate, torch.tensor([3.0, 0.8]))
    model.eval()
    with torch.no_grad():
        model.readout.weight.zero_()
    torch.testing.assert_close(model(torch.randn(2, 5, 12, 12)), torch.tensor([[0.1, 0.4]] * 2), rtol=1e-3, atol=1e-4)
    assert RetinaCNN(**model.config()).config() == model.config()
    with pytest.raises(ConfigError, match="output"):
        RetinaCNN(2, history=5, frame_shape=12, kernel_sizes=(5, 3), output="relu")


def test_factorized_readout_and_per_channel_batch_norm():
    torch.manual_seed(0)
    model = RetinaCNN(
        3,
        history=5,
        frame_shape=12,
        kernel_sizes=(5, 3),
        readout="factorized",
        batch_norm="channel",
        l1_readout=0.1,
        l2_weight=0.0,
        l1_activity=0.0,
    )
    assert sum(p.numel() for p in model.readout.parameters()) == 3 * (6 * 6 + 8)  # mask + channel weights per cell
    hidden = torch.randn(4, 8 * 6 * 6)
    dense = hidden @ model.readout.weight.T  # the equivalent dense matrix (cell, channels * h * w)
    torch.testing.assert_close(model.readout(hidden), dense, rtol=1e-5, atol=1e-5)
    assert isinstance(model.norms[0], torch.nn.BatchNorm2d)
    torch.testing.assert_close(model.regularization(torch.zeros(2, 3)), 0.1 * model.readout.mask.abs().sum())
    assert model.eval()(torch.randn(2, 5, 12, 12)).shape == (2, 3)
    assert RetinaCNN(**model.config()).config() == model.config()
    with pytest.raises(ConfigError):
        RetinaCNN(3, history=5, frame_shape=12, kernel_sizes=(5, 3), readout="gaussian")


def test_recurrent_variant_remembers_beyond_its_window():
    torch.manual_seed(0)
    kwargs = dict(history=4, frame_shape=10, kernel_sizes=(3, 3), channels=(3, 3), noise_std=0.0)
    feedforward = RetinaCNN(2, **kwargs).eval()
    recurrent = RetinaCNN(2, recurrent=True, **kwargs).eval()
    recurrent.load_state_dict(feedforward.state_dict(), strict=False)
    seq = torch.randn(2, 6, 4, 10, 10)
    # lateral weights start at zero: the recurrent model is the feedforward one, step by step
    torch.testing.assert_close(recurrent(seq), feedforward(seq.flatten(0, 1)).view(2, 6, 2))
    with torch.no_grad():
        for lateral in recurrent.laterals:
            lateral.weight.normal_(0, 0.3)
    changed = seq.clone()
    changed[:, 0] += 5.0  # only the first window differs
    a, b = recurrent(seq), recurrent(changed)
    assert not torch.allclose(a[:, -1], b[:, -1])  # the last step (5 windows later) still feels it
    # running in two chunks with the state carried over equals one pass
    first, state = recurrent.forward_sequence(seq[:, :3])
    second, _ = recurrent.forward_sequence(seq[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), a)


def test_ln_model_shapes_and_nonlinearities():
    x = torch.randn(3, 4, 5, 6)
    for name in ("softplus", "exp", "parametric_softplus"):
        model = LNModel(2, history=4, frame_shape=(5, 6), nonlinearity=name)
        model.init_output_bias(torch.tensor([0.5, 2.0]))
        with torch.no_grad():
            model.linear.weight.zero_()
        torch.testing.assert_close(model(x), torch.tensor([[0.5, 2.0]] * 3), rtol=1e-4, atol=1e-5)
        assert model.filters.shape == (2, 4, 5, 6)
    with pytest.raises(ConfigError):
        LNModel(2, nonlinearity="relu6")
    with pytest.raises(ConfigError, match="accepts"):
        build_model("ln", 3, channels=(8, 8))


def test_poisson_loss_equals_torch_and_the_closed_form():
    rate = torch.tensor([[0.5, 2.0], [1e-3, 4.0]])
    counts = torch.tensor([[0.0, 3.0], [1.0, 2.0]])
    reference = torch.nn.PoissonNLLLoss(log_input=False, full=False, eps=1e-8)(rate, counts)
    torch.testing.assert_close(poisson_loss(rate, counts), reference)
    closed = np.mean([0.5, 2.0 - 3 * np.log(2.0 + 1e-8), 1e-3 - np.log(1e-3 + 1e-8), 4.0 - 2 * np.log(4.0 + 1e-8)])
    assert float(poisson_loss(rate, counts)) == pytest.approx(closed, rel=1e-6)


# --------------------------------------------------------------------------------------- recovery checks
def _ln_data(seed: int, n: int, history: int, size: int):
    rng = np.random.default_rng(seed)
    movie = rng.standard_normal((n, size, size)).astype(np.float32)
    lags = np.arange(history)[::-1]  # index history-1 = current frame
    temporal = np.exp(-lags / 2.0) * np.sin(lags / 1.5 + 0.3)
    yy, xx = np.mgrid[:size, :size]
    spatial = np.exp(-((yy - 2.5) ** 2 + (xx - 3.0) ** 2) / 3.0) - 0.3 * np.exp(
        -((yy - 2.5) ** 2 + (xx - 3.0) ** 2) / 9.0
    )
    true = (temporal[:, None, None] * spatial[None]).astype(np.float32)
    true /= np.linalg.norm(true)
    drive = history_view_numpy(movie, history).reshape(n - history + 1, -1) @ true.ravel()
    rate = np.log1p(np.exp(2.0 * drive - 0.5))
    counts = np.zeros(n, np.float32)
    counts[history - 1 :] = rng.poisson(rate)
    return movie, counts[:, None], true


def test_ln_model_recovers_a_known_filter():
    movie, counts, true = _ln_data(0, 8000, 8, 6)
    ds = RetinaDataset(movie, counts, history=8)
    train, valid = train_valid_split(ds, 0.1)
    torch.manual_seed(0)
    model = LNModel(1, history=8, frame_shape=6, l2_weight=1e-4)
    model.init_output_bias(torch.tensor([float(counts.mean())]))
    fit(model, train, valid, epochs=6, batch_size=128, lr=1e-2, progress=False)
    learned = model.filters[0].numpy().ravel()
    corr = np.corrcoef(learned, true.ravel())[0, 1]
    assert corr > 0.95, corr


def test_glm_simulation_feeds_its_own_spikes_back():
    glm = GLM(1, history=2, frame_shape=3, spike_history=3)
    windows = torch.zeros(4000, 2, 3, 3)
    glm.init_output_bias(torch.tensor([0.5]))  # baseline 0.5 spikes per bin
    with torch.no_grad():
        glm.stimulus_filter.weight.zero_()
        glm.history_filter[0, 0] = torch.tensor([0.0, 0.0, -20.0])  # lag 1 (last entry): refractory
    spikes, rates = glm.simulate(windows, n_trials=2, generator=torch.Generator().manual_seed(1))
    assert spikes.shape == rates.shape == (2, 4000, 1)
    after_spike = spikes[:, :-1, 0] > 0
    assert after_spike.sum() > 500
    assert (spikes[:, 1:, 0][after_spike] == 0).all()  # never two spiking bins in a row
    torch.testing.assert_close(rates[:, 1:, 0][~after_spike], torch.full_like(rates[:, 1:, 0][~after_spike], 0.5))
    with torch.no_grad():
        glm.history_filter.zero_()
    free, _ = glm.simulate(windows, n_trials=2, generator=torch.Generator().manual_seed(1))
    assert free.mean() > 1.2 * spikes.mean()  # removing the feedback raises the rate


def test_glm_fitted_to_glm_data_simulates_matching_rates():
    rng = np.random.default_rng(3)
    n, history, size = 6000, 4, 4
    movie = rng.standard_normal((n, size, size)).astype(np.float32)
    truth = GLM(1, history=history, frame_shape=size, spike_history=5)
    with torch.no_grad():
        truth.stimulus_filter.weight.copy_(torch.from_numpy(rng.standard_normal((1, history * size * size)) * 0.08))
        truth.stimulus_filter.bias.fill_(np.log(0.4))
        truth.history_filter[0, 0] = torch.tensor([-0.1, -0.2, -0.4, -0.8, -2.0])  # refractory, lag 1 last
    windows = history_view(torch.from_numpy(movie), history)
    spikes, _ = truth.simulate(windows, generator=torch.Generator().manual_seed(0))
    counts = np.zeros((n, 1), np.float32)
    counts[history - 1 :] = spikes[0].numpy()
    ds = RetinaDataset(movie, counts, history=history, spike_history=5)
    train, valid = train_valid_split(ds, 0.1)
    torch.manual_seed(0)
    model = GLM(1, history=history, frame_shape=size, spike_history=5, l2_weight=1e-4)
    model.init_output_bias(torch.tensor([float(counts.mean())]))
    fit(model, train, valid, epochs=6, batch_size=128, lr=1e-2, progress=False)
    learned = model.history_filter.detach()[0, 0]
    assert learned[-1] < -0.8 and learned[-1] < learned[-3] < learned[0]  # refractoriness, strongest at lag 1
    simulated, _ = model.simulate(windows, n_trials=5, generator=torch.Generator().manual_seed(2))
    assert float(simulated.mean()) == pytest.approx(float(counts[history - 1 :].mean()), rel=0.1)


def test_ln_separable_rank_assembles_its_filters():
    model = LNModel(2, history=3, frame_shape=(4, 5), rank=2)
    with torch.no_grad():
        model.spatial.normal_()
    x = torch.randn(6, 3, 4, 5)
    full = model.filters  # (cell, history, y, x) built from the separable terms
    expected = torch.nn.functional.softplus((x.flatten(1) @ full.flatten(1).T) + model.bias)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    assert model.config()["rank"] == 2
    with pytest.raises(ConfigError):
        LNModel(2, rank=0)


# ------------------------------------------------------------------------------ paper reproduction (slow)
def _true_subunit_filter(rec, history: int, size: int) -> np.ndarray:
    """The virtual retina's ON subunit filter (DoG x biphasic), centred in a size x size patch, our lag order."""
    import json

    from neuromodels.datasets.samples import temporal_filter

    params = json.loads(rec.attrs["parameters"])
    temporal = temporal_filter(params)[:history][::-1]  # index history-1 = current frame
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0

    def gauss(sigma: float) -> np.ndarray:
        return np.exp(-(yy**2 + xx**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)

    spatial = gauss(params["subunit_center_sigma_px"]) - params["subunit_surround_weight"] * gauss(
        params["subunit_surround_sigma_px"]
    )
    return temporal[:, None, None] * spatial[None]


@pytest.mark.slow
def test_cnn_predicts_the_virtual_retina_better_than_ln():
    """McIntosh et al. 2016, Fig. 2 on sample:retina: the CNN's test CC is clearly above the LN model's, and
    it gets within 80% of the noise ceiling (median CC_norm)."""
    from neuromodels.analysis.retina_metrics import compare_models
    from neuromodels.datasets import sample

    rec = sample("retina")
    metrics, estimators = compare_models(rec, ("cnn", "ln"), seed=0, progress=False)
    cnn, ln = metrics.sel(model="cnn"), metrics.sel(model="ln")
    print(
        "\nCC cnn",
        np.round(cnn["cc"].values, 3),
        "\nCC ln ",
        np.round(ln["cc"].values, 3),
        "\nceiling",
        np.round(cnn["cc_max"].values, 3),
        f"\nmedian CC cnn {float(cnn['cc'].median()):.3f} ln {float(ln['cc'].median()):.3f}; "
        f"median CC_norm cnn {float(cnn['cc_norm'].median()):.3f} ln {float(ln['cc_norm'].median()):.3f}",
    )
    assert float(cnn["cc"].median()) > float(ln["cc"].median()) + 0.15
    assert int((cnn["cc"] > ln["cc"]).sum()) >= 10  # of 12 cells
    on_off = rec["cell_type"].values == "ON-OFF"
    assert float(cnn["cc"][on_off].min()) > 0.4 > float(ln["cc"][on_off].max())  # LN cannot see ON-OFF cells
    assert float(cnn["cc_norm"].median()) >= 0.8  # the target; measured 0.819 (LN 0.425)

    # first-layer filters: the best-matching channel resembles the true subunit filter (either sign)
    truth = _true_subunit_filter(rec, 40, 15).ravel()
    learned = estimators["cnn"].model_.first_layer_filters.numpy().reshape(8, -1)
    best = max(abs(np.corrcoef(truth, w)[0, 1]) for w in learned)
    print(f"best |corr| of a first-layer filter with the true subunit filter: {best:.2f}")
    assert best > 0.5


# ---------------------------------------------------------------------------------------- real data: fly H1
H1_HISTORY = 100  # 200 ms at 500 Hz


@pytest.fixture(scope="module")
def fly_h1(shared_data, tmp_path_factory):
    """``(stim, rho)`` of the H1 recording, gunzipped into a temporary folder (never into the repository)."""
    import gzip
    import shutil

    import scipy.io

    path = shared_data / "fly-h1" / "c1p8.mat.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    target = tmp_path_factory.mktemp("fly_h1") / "c1p8.mat"
    with gzip.open(path) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    data = scipy.io.loadmat(target)
    return data["stim"].ravel().astype(np.float32), data["rho"].ravel().astype(np.int64)  # 500 Hz


def _spike_triggered_average(stim: np.ndarray, rho: np.ndarray, history: int) -> np.ndarray:
    windows = history_view_numpy(stim, history)  # (n - history + 1, history): window i ends at sample i + history - 1
    spikes = rho[history - 1 :].astype(np.float64)
    return (windows * spikes[:, None]).sum(0) / spikes.sum()


def test_fly_h1_spike_triggered_average_has_the_classic_shape(fly_h1):
    """H1 (de Ruyter van Steveninck; Dayan & Abbott Fig. 1.9): positive STA peaking ~15-40 ms before a spike."""
    stim, rho = fly_h1
    assert stim.shape == rho.shape == (600_000,) and int(rho.sum()) == 53_601
    history = 150  # 300 ms
    sta = _spike_triggered_average(stim, rho, history)
    lags_ms = (np.arange(history) - (history - 1)) * 2.0
    peak = int(np.argmax(sta))
    assert -40.0 <= lags_ms[peak] <= -15.0  # measured: -28 ms
    assert sta[peak] > 10 * np.abs(sta).min() and sta[peak] > 0.5 * stim.std()  # a large positive lobe
    assert sta[peak] > 10 * np.abs(sta[lags_ms < -200]).max()  # gone by 200 ms
    assert abs(sta[-1]) < 0.05 * sta[peak]  # causal: nothing at lag 0


def test_ln_model_on_fly_h1(fly_h1):
    """LN model fitted to H1 through RetinaEstimator: its filter is the STA's shape; it predicts held-out spikes.

    1x1-pixel frames at 500 Hz (2 ms bins), 100-sample (200 ms) history, softplus; trained on the first 80%
    (early stopping on 2 s blocks of it), tested on the last 20% (a contiguous block of 240 s of the 1,200 s). Measured
    (seed 0): test CC 0.361 in 2 ms bins, 0.682 in 10 ms bins, 0.750 in 20 ms bins; filter peak -28 ms;
    correlation of the filter with the STA 0.988.
    """
    from neuromodels.datasets.recording import recording_from_counts
    from neuromodels.fitting.estimator import RetinaEstimator

    torch.set_num_threads(1)
    stim, rho = fly_h1
    n, dt, cut = len(stim), 0.002, int(0.8 * len(stim))
    rec = recording_from_counts(
        rho[:, None], np.arange(n) * dt, dt, ["H1"], source="c1p8.mat.gz", stimulus=stim[:, None, None]
    )
    rec = rec.assign_coords(split=("time", np.array(["train"] * cut + ["test"] * (n - cut), dtype=object)))
    est = RetinaEstimator("ln", history=H1_HISTORY, epochs=3, batch_size=1024, lr=1e-3, l2_weight=0.0).fit(rec)
    test = rec.isel(time=slice(cut, None))
    prediction = est.predict(test).values[:, 0]
    counts = test["response"].values[:, 0]

    def binned_cc(k: int) -> float:
        m = (len(counts) // k) * k
        return float(np.corrcoef(prediction[:m].reshape(-1, k).sum(1), counts[:m].reshape(-1, k).sum(1))[0, 1])

    learned = est.model_.filters[0, :, 0, 0].numpy()
    sta = _spike_triggered_average(stim[:cut], rho[:cut], H1_HISTORY)
    lags_ms = (np.arange(H1_HISTORY) - (H1_HISTORY - 1)) * 2.0
    agreement = float(np.corrcoef(learned, sta)[0, 1])
    print(
        f"\nfly H1 LN: test CC {binned_cc(1):.3f} (2 ms bins), {binned_cc(5):.3f} (10 ms), {binned_cc(10):.3f} "
        f"(20 ms); filter peak at {lags_ms[np.argmax(learned)]:.0f} ms; corr(filter, STA) {agreement:.3f}"
    )
    assert -40.0 <= lags_ms[np.argmax(learned)] <= -15.0
    assert agreement > 0.9  # white-noise input: the LN filter is the STA up to scale (Bussgang)
    assert binned_cc(1) > 0.3 and binned_cc(5) > 0.6
