"""SuperSpike: the rule equals autograd's surrogate gradient of the van Rossum loss; RMaxProp; BPTT via fit()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting import superspike
from neuromodels.fitting.superspike import (
    PRESETS,
    SuperSpike,
    VanRossumKernel,
    make_task,
    paper_rho,
    run_task,
    train_bptt,
    van_rossum_loss,
)
from neuromodels.spiking import LIFParameters, SpikingNetwork, poisson_spikes, run_network


def _tiny(method: str = "exact", layers=(8, 5), seed: int = 0, delay: float = 0.0) -> SpikingNetwork:
    return SpikingNetwork(
        20, list(layers), weight_mean=1.5, weight_std=1.0, seed=seed, method=method, delay=delay
    ).double()


def _data(n_out: int = 5):
    x = poisson_spikes(20, 40.0, 0.2, 1e-3, trials=2, seed=0)
    y = poisson_spikes(n_out, 20.0, 0.2, 1e-3, trials=2, seed=5)
    return x, y


def test_van_rossum_kernel_closed_form_and_adjoint():
    kernel = VanRossumKernel(1e-3, 5e-3, 10e-3)
    impulse = torch.zeros(1, 200, 1, dtype=torch.float64)
    impulse[0, 10, 0] = 1.0
    response = kernel.causal(impulse)[0, :, 0].numpy()
    m = np.arange(190) * 1e-3
    expected = (np.exp(-m / 10e-3) - np.exp(-m / 5e-3)) / kernel.peak
    np.testing.assert_allclose(response[10:], expected, atol=1e-14)
    assert abs(response.max() - 1.0) < 2e-3  # peak of the continuous kernel is 1 (sampled at 1 ms)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(3, 50, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    assert torch.allclose((kernel.causal(a) * b).sum(), (a * kernel.anticausal(b)).sum(), rtol=1e-12)


@pytest.mark.parametrize("method, delay", [("exact", 0.0), ("euler", 0.0), ("exact", 2e-3)])
def test_output_layer_update_equals_autograd_gradient_of_van_rossum_loss(method, delay):
    net = _tiny(method, delay=delay)  # with a delay: eps * S_j is the presynaptic raster as it arrives
    x, y = _data()
    block = SuperSpike(net, beta=10.0).gradients(x, y)
    run = run_network(net, torch.as_tensor(x, dtype=torch.float64), 1e-3, method, surrogate_beta=10.0)
    assert all(s.sum() > 50 for s in block.spikes)  # both layers active: the test compares real gradients
    loss = van_rossum_loss(run.spikes[-1], torch.as_tensor(y, dtype=torch.float64))
    loss.backward()
    assert math.isclose(float(loss.detach()), block.loss, rel_tol=1e-12)
    autograd = -net.feedforward[1].grad.numpy()
    np.testing.assert_allclose(block.gradients[1], autograd, rtol=0, atol=1e-12 * np.abs(autograd).max())
    # hidden layer: SuperSpike replaces the output's sigma'(U) and PSP kernel by the feedback matrix (sections 3.3.4
    # and 4.1), so it differs from the exact gradient but points the same way
    exact_hidden = -net.feedforward[0].grad.numpy()
    ours = block.gradients[0]
    cosine = (exact_hidden * ours).sum() / np.linalg.norm(exact_hidden) / np.linalg.norm(ours)
    assert 0.8 < cosine < 1.0 - 1e-6


@pytest.mark.parametrize("delay_steps", [0, 3])
def test_hidden_update_is_autograd_of_the_fed_back_error(delay_steps):
    net = _tiny(delay=delay_steps * 1e-3)
    x, y = _data()
    rule = SuperSpike(net, feedback="symmetric")
    block = rule.gradients(x, y)
    run = run_network(net, torch.as_tensor(x, dtype=torch.float64), 1e-3, "exact", surrogate_beta=10.0)
    kernel = rule.kernel
    error = kernel.causal(torch.as_tensor(y, dtype=torch.float64) - run.spikes[-1].detach())
    fed_back = error @ net.feedforward[1].detach().T  # e_k = sum_i W_ki e_i
    back = kernel.anticausal(fed_back)
    # a hidden spike at step n reaches the output at n + delay: it meets the error of step n + delay
    back = torch.cat([back[:, delay_steps:], torch.zeros_like(back[:, :delay_steps])], dim=1)
    pseudo = 1e-3 * (back * run.spikes[0]).sum() / len(x)
    (grad,) = torch.autograd.grad(pseudo, net.feedforward[0])
    np.testing.assert_allclose(block.gradients[0], grad.numpy(), atol=1e-12 * grad.abs().max().item())


@pytest.mark.parametrize("delay", [0.0, 2e-3])
def test_online_eligibility_traces_equal_the_matrix_form(delay):
    net = _tiny(delay=delay)
    x, y = _data()
    fast = SuperSpike(net, feedback="random", seed=3).gradients(x, y)
    online = SuperSpike(net, feedback="random", seed=3, online=True).gradients(x, y)
    for a, b in zip(fast.gradients, online.gradients):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(a).max())


def test_rmaxprop_steps_clipping_and_decay():
    net = SpikingNetwork(3, [2]).double()
    rule = SuperSpike(net, learning_rate=0.01, tau_rms=30.0, weight_limit=0.05)
    before = net.feedforward[0].detach().numpy().copy()
    g1 = np.array([[1e-3, -2e-5], [0.0, 4.0], [1e-2, -1e-2]])
    rule.apply([g1], 0.5)
    expected = np.clip(before + 0.01 * np.sign(g1), -0.05, 0.05)  # first step: |step| = r0 wherever g != 0
    np.testing.assert_allclose(net.feedforward[0].detach().numpy(), expected, atol=1e-15)
    g2 = g1 / 10
    rule.apply([g2], 0.5)
    gamma = math.exp(-0.5 / 30.0)
    v = np.maximum(gamma * g1**2, g2**2)
    expected2 = np.clip(expected + 0.01 * g2 / (np.sqrt(v) + 1e-12), -0.05, 0.05)
    np.testing.assert_allclose(net.feedforward[0].detach().numpy(), expected2, atol=1e-15)


def test_regulariser_pulls_active_hidden_weights_towards_zero():
    net = _tiny()
    x, y = _data()
    plain = SuperSpike(net).gradients(x, y)
    regular = SuperSpike(net, regulariser_strength=1.0).gradients(x, y)
    difference = regular.gradients[0] - plain.gradients[0]
    weights = net.feedforward[0].detach().numpy()
    assert np.all(difference * weights <= 0) and np.abs(difference).max() > 0
    # exact: the regulariser acts on hidden layers only; the output gradient is the same code on the same run
    np.testing.assert_array_equal(regular.gradients[1], plain.gradients[1])


def _z_closed_form(spikes: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """``z[n] = sum_{m <= n} exp(-(n - m) dt / tau) s[m]`` for ``(batch, time, n)`` spikes, as one matrix product."""
    steps = np.arange(spikes.shape[1])
    lag = steps[:, None] - steps[None, :]
    decay = np.where(lag >= 0, np.exp(-np.clip(lag, 0, None) * dt / tau), 0.0)
    return np.einsum("nm,bmk->bnk", decay, spikes.astype(np.float64))


@pytest.mark.parametrize("exponent", [4.0, 2.0])
def test_regulariser_term_matches_its_formula(exponent):
    # paper eq. 3.4-3.5: the hidden rule gains -rho w_ij int z_i^a ds, dz_i/dt = -z_i/tau_het + S_i
    net = _tiny()
    x, y = _data()
    plain = SuperSpike(net).gradients(x, y)
    regular = SuperSpike(net, regulariser_strength=0.7, tau_het=0.05, regulariser_exponent=exponent).gradients(x, y)
    z = _z_closed_form(plain.spikes[0], 1e-3, 0.05)
    expected = 0.7 * net.feedforward[0].detach().numpy() * (1e-3 * (z**exponent).sum(1).mean(0))[None, :]
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(
        plain.gradients[0] - regular.gradients[0], expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max()
    )


def _auryn_to_ours_ratio(dt: float) -> float:
    """Regulariser / error term of a transcription of the authors' Auryn recursions (RFSuperSpikeConnection with
    EulerTrace follow(), volts) over the same term ratio of ours with ``paper_rho(1, dt)``: 1 if they agree."""
    n_steps, tau_rise, tau_decay, tau_het, w_units = int(round(1.0 / dt)), 5e-3, 10e-3, 0.1, 0.7
    pre = poisson_spikes(1, 20.0, 1.0, dt, seed=1)
    psp = superspike._psp_traces(pre, LIFParameters(), dt, "exact")[0, :, 0]
    membrane = 0.5 + 0.4 * np.sin(2 * np.pi * 3.0 * np.arange(n_steps) * dt)
    hebb = superspike._surrogate_derivative(membrane, 1.0, 10.0) * psp
    post = poisson_spikes(1, 10.0, 1.0, dt, seed=3)[0, :, 0].astype(np.float64)
    difference = poisson_spikes(1, 10.0, 1.0, dt, seed=2)[0, :, 0] - post
    beta_volts = 1.0 / 1e-3  # the code's beta = 1/mV
    tr_err = tr_err_flt = el = el_flt = z = 0.0
    auryn_error = auryn_regulariser = 0.0
    z_ours = np.empty(n_steps)
    for n in range(n_steps):
        z = z * math.exp(-dt / tau_het) + post[n]
        z_ours[n] = z
        tr_err += (difference[n] - tr_err) * dt / tau_rise  # tr_err follows err (+-1 per spike and step)
        tr_err_flt += (tr_err - tr_err_flt) * dt / tau_decay
        el += beta_volts * hebb[n]  # add_to_syntrace(psp * sigma_prime)
        el_flt += (el - el_flt) * dt / tau_decay  # el_val_flt->follow(el_val, dt / tau_el_decay)
        el *= math.exp(-dt / tau_rise)
        auryn_error += el_flt * tr_err_flt
        auryn_regulariser += 1.0 * (w_units * 0.01) * z**4  # regstrength * weight (volts) * hom4
    kernel = VanRossumKernel(dt, tau_rise, tau_decay)
    ours_error = dt * float(
        (
            kernel.causal(torch.from_numpy(hebb)[None, :, None])
            * kernel.causal(torch.from_numpy(difference.astype(np.float64))[None, :, None])
        ).sum()
    )
    ours_regulariser = paper_rho(1.0, dt) * w_units * dt * float((z_ours**4).sum())
    return (auryn_regulariser / auryn_error) / (ours_regulariser / ours_error)


def test_paper_rho_gives_the_authors_balance_of_regulariser_and_error():
    coarse, fine = _auryn_to_ours_ratio(1e-4), _auryn_to_ours_ratio(2e-5)
    # the code's Euler follow() filters differ from our exact kernels by O(dt / tau): 1.0% at 0.1 ms, 0.2% at 0.02 ms
    assert abs(coarse - 1) < 0.02 and abs(fine - 1) < 0.005 and abs(fine - 1) < abs(coarse - 1) / 3, (coarse, fine)
    assert paper_rho(1.0, 1e-4) == pytest.approx(0.008, rel=1e-12)  # = 0.01 / (1000 * 0.25 * 0.005)


def test_superspike_learns_timed_spikes_of_one_neuron():
    net = SpikingNetwork(50, [1], weight_mean=0.5, weight_std=1.0, seed=0)
    x = poisson_spikes(50, 10.0, 0.2, 1e-3, seed=1)
    y = np.zeros((1, 200, 1), dtype=np.uint8)
    y[0, [60, 140], 0] = 1
    losses = SuperSpike(net, learning_rate=5e-2).train(x, y, 150, progress=False)
    assert losses[0] / np.mean(losses[-10:]) > 3  # measured: 0.0133 -> 0.0013 (10x)


def test_bptt_trains_through_the_framework_loop():
    net = SpikingNetwork(20, [5], weight_mean=1.0, seed=0)
    x, y = _data()
    x, y = x[:, :100], y[:, :100]
    losses = train_bptt(net, x, y, epochs=10, lr=3e-2)
    assert len(losses) == 10 and losses[-1] < 0.7 * losses[0]


def test_feedback_scales_paper_and_normalised():
    net = _tiny(layers=(8, 5))
    paper = SuperSpike(net, feedback="random", feedback_scale="paper", seed=3).feedback_matrices[0]
    normalised = SuperSpike(net, feedback="random", seed=3).feedback_matrices[0]
    np.testing.assert_allclose(normalised * math.sqrt(8), paper, rtol=1e-15)  # the same N(0, 1) draws
    assert abs(paper.std() - 1) < 0.5  # 40 draws of N(0, 1) (section 3.3.4: zero mean, unit variance)
    np.testing.assert_array_equal(
        SuperSpike(net, feedback="uniform", feedback_scale="paper").feedback_matrices[0], np.ones((8, 5))
    )  # "all weighting coefficients were simply set to one"
    np.testing.assert_allclose(SuperSpike(net, feedback="uniform").feedback_matrices[0], np.full((8, 5), 8**-0.5))


@pytest.mark.parametrize("feedback", ["random", "uniform"])
def test_feedback_scale_matters_only_through_the_regulariser(feedback):
    x, y = _data()

    def trained(scale: str, rho: float) -> np.ndarray:
        net = _tiny()
        SuperSpike(net, feedback=feedback, feedback_scale=scale, regulariser_strength=rho, seed=2).train(
            x, y, 3, progress=False
        )
        return net.feedforward[0].detach().numpy()

    # RMaxProp divides the gradient by its running maximum, so scaling B changes nothing but rounding ...
    np.testing.assert_allclose(trained("paper", 0.0), trained("normalised", 0.0), rtol=1e-9, atol=1e-12)
    # ... until the regulariser, which does not scale with B, is on
    assert np.abs(trained("paper", 1.0) - trained("normalised", 1.0)).max() > 1e-4  # measured 5.5e-4, 5.7e-3


def test_weights_stay_within_the_papers_bound():
    net = SpikingNetwork(3, [2]).double()
    rule = SuperSpike(net, learning_rate=50.0, weight_limit=PRESETS["paper"].weight_limit)
    rule.apply([np.array([[1.0, -1.0], [1e-3, -1e-3], [0.0, 0.0]])], 0.5)
    after = net.feedforward[0].detach().numpy()
    np.testing.assert_array_equal(after[:2], [[10.0, -10.0], [10.0, -10.0]])  # 0.1 V = 10 units of 10 mV


def test_paper_preset_carries_the_papers_values():
    paper, default = PRESETS["paper"], PRESETS["default"]
    assert paper.dt == 1e-4  # section 3: "temporal resolution of 0.1 ms"
    assert paper.refractory == 5e-3  # Table 1 and section 3.1: tau_ref = 5 ms
    assert paper.delay == 0.8e-3  # section 3.1: "axonal delay of 0.8 ms" (Auryn's MINDELAY, 8 steps of 0.1 ms)
    assert paper.weight_limit == pytest.approx(0.1 / 0.01)  # section 3.3.5: -0.1 < w < 0.1 (V: sim_*.cpp wmax)
    assert paper.feedback_scale == "paper"  # section 3.3.4: N(0, 1) and all ones
    assert paper.rho == 1.0 and paper.regulariser_exponent == 4.0  # section 3.3.7: "rho = 1 and a = 4"
    assert (paper.tau_het, paper.tau_rms, paper.eps_rms) == (0.1, 30.0, 1e-12)  # authors' code and run scripts
    assert len(paper.timing_targets) == 5 and paper.timing_trials == 500  # section 4: five spikes, 500 trials
    np.testing.assert_allclose(np.diff((0.0,) + paper.timing_targets), 0.083, rtol=1e-9)  # equidistant
    assert paper.regulariser_strength("random") == paper_rho(1.0, 1e-4)  # random-feedback runs only
    assert paper.regulariser_strength("symmetric") == paper.regulariser_strength("uniform") == 0.0
    assert (default.dt, default.refractory, default.delay, default.weight_limit, default.rho) == (1e-3, 0, 0, None, 0)
    assert default.regulariser_strength("random") == 0.0

    task, base = make_task("timing", preset="paper"), make_task("timing")
    net = task["network"]
    assert (net.dt, net.delay, net.neurons[0].refractory) == (1e-4, 0.8e-3, 5e-3)
    assert np.flatnonzero(task["targets"][0, :, 0]).tolist() == [830, 1660, 2490, 3320, 4150]
    assert np.flatnonzero(base["targets"][0, :, 0]).tolist() == [100, 200, 300, 400]
    # the default task's input spike times, placed on the 0.1 ms grid
    np.testing.assert_array_equal(task["inputs"][:, ::10], base["inputs"])
    assert task["inputs"].sum() == base["inputs"].sum()
    assert task["trials"] == 500


def test_run_task_hands_the_preset_to_the_rule(monkeypatch):
    seen = {}

    class Spy(SuperSpike):
        def __init__(self, network, **kwargs):
            seen.update(kwargs, dt=network.dt, delay=network.delay)
            super().__init__(network, **kwargs)

    monkeypatch.setattr(superspike, "SuperSpike", Spy)
    result = run_task("xor", feedback="random", trials=1, preset="paper", progress=False)
    assert result.dt == 1e-4 and result.extra["preset"] == "paper" and result.output.shape == (1000, 1)
    assert (seen["dt"], seen["delay"], seen["weight_limit"], seen["feedback_scale"]) == (1e-4, 8e-4, 10.0, "paper")
    assert seen["regulariser_strength"] == paper_rho(1.0, 1e-4) and seen["regulariser_exponent"] == 4.0
    run_task("xor", feedback="symmetric", trials=1, preset="paper", progress=False)
    assert seen["regulariser_strength"] == 0.0
    with pytest.raises(ConfigError, match="preset"):
        make_task("xor", preset="auryn")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="feedback"):
        SuperSpike(_tiny(), feedback="transpose")
    with pytest.raises(ConfigError, match="feedback_scale"):
        SuperSpike(_tiny(), feedback="random", feedback_scale="unit")
    with pytest.raises(ConfigError, match="recurrent"):
        SuperSpike(SpikingNetwork(5, [3], recurrent=True))
    with pytest.raises(ConfigError, match="target_spikes"):
        SuperSpike(_tiny()).gradients(*_data(n_out=4))


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_interrupted_training_resumes_to_the_same_weights(tmp_path, feedback):
    from neuromodels.fitting.checkpoint import CheckpointError

    def setup(seed=4):
        net = SpikingNetwork(30, [12, 5], weight_mean=0.5, weight_std=0.5, seed=seed)
        return net, SuperSpike(net, learning_rate=5e-3, feedback=feedback, seed=seed)

    x = poisson_spikes(30, rate=20.0, duration=0.2, dt=1e-3, seed=0)[0]
    target = poisson_spikes(5, rate=10.0, duration=0.2, dt=1e-3, seed=1)[0]
    whole_net, whole = setup()
    expected = whole.train(x[None], target[None], trials=6, progress=False)

    first_net, first = setup()
    first.train(x[None], target[None], trials=3, progress=False, checkpoint_dir=tmp_path, checkpoint_every=1)
    resumed_net, resumed = setup(seed=99)  # other initial weights and feedback: everything must come from the file
    losses = resumed.train(
        x[None], target[None], trials=6, progress=False, checkpoint_dir=tmp_path, checkpoint_every=1, resume=True
    )
    # exact: a resumed run repeats the uninterrupted one operation for operation (same machine, same code)
    assert losses == expected
    for a, b in zip(whole_net.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.rms, resumed.rms):
        np.testing.assert_array_equal(a, b)
    other = SuperSpike(SpikingNetwork(30, [12, 5], seed=4), learning_rate=1e-2, feedback=feedback)
    with pytest.raises(CheckpointError, match="other settings"):
        other.train(x[None], target[None], trials=6, progress=False, checkpoint_dir=tmp_path, resume=True)


def _backward_node_names(tensor: torch.Tensor) -> list[str]:
    names, seen, stack = [], set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_bptt_graph_takes_time_slices_by_unbind_not_by_indexing():
    """Indexing a tensor with a graph once per time step gives every step's backward a zero gradient of the whole
    (time, batch, neuron) tensor: O(T^2) work (the BPTT step at batch 64 over 1 s took 78 s instead of ~1.5 s).
    The layer's synaptic increments and the van Rossum filter take their slices with one unbind each."""
    net = SpikingNetwork(20, [5], seed=0)
    x = torch.as_tensor(poisson_spikes(20, 50.0, 0.03, trials=2, seed=1), dtype=torch.float32)
    out = net(x)
    loss = van_rossum_loss(out, torch.zeros_like(out), 1e-3)
    names = _backward_node_names(loss)
    assert "SelectBackward0" not in names
    assert names.count("UnbindBackward0") == 2  # the layer's increments and the loss filter
