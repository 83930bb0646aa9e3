"""SuperSpike: the rule equals autograd's surrogate gradient of the van Rossum loss; RMaxProp; BPTT via fit()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting.superspike import SuperSpike, VanRossumKernel, train_bptt, van_rossum_loss
from neuromodels.spiking import SpikingNetwork, poisson_spikes, run_network


def _tiny(method: str = "exact", layers=(8, 5), seed: int = 0) -> SpikingNetwork:
    return SpikingNetwork(20, list(layers), weight_mean=1.5, weight_std=1.0, seed=seed, method=method).double()


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


@pytest.mark.parametrize("method", ["exact", "euler"])
def test_output_layer_update_equals_autograd_gradient_of_van_rossum_loss(method):
    net = _tiny(method)
    x, y = _data()
    block = SuperSpike(net, beta=10.0).gradients(x, y)
    run = run_network(net, torch.as_tensor(x, dtype=torch.float64), 1e-3, method, surrogate_beta=10.0)
    assert all(s.sum() > 50 for s in block.spikes)  # both layers active: the test compares real gradients
    loss = van_rossum_loss(run.spikes[-1], torch.as_tensor(y, dtype=torch.float64))
    loss.backward()
    assert math.isclose(float(loss.detach()), block.loss, rel_tol=1e-12)
    autograd = -net.feedforward[1].grad.numpy()
    np.testing.assert_allclose(block.gradients[1], autograd, rtol=0, atol=1e-12 * np.abs(autograd).max())
    # hidden layer: SuperSpike replaces the output's sigma'(U) and PSP kernel by the feedback matrix (paper eq. 15),
    # so it differs from the exact gradient but points the same way
    exact_hidden = -net.feedforward[0].grad.numpy()
    ours = block.gradients[0]
    cosine = (exact_hidden * ours).sum() / np.linalg.norm(exact_hidden) / np.linalg.norm(ours)
    assert 0.8 < cosine < 1.0 - 1e-6


def test_hidden_update_is_autograd_of_the_fed_back_error():
    net = _tiny()
    x, y = _data()
    rule = SuperSpike(net, feedback="symmetric")
    block = rule.gradients(x, y)
    run = run_network(net, torch.as_tensor(x, dtype=torch.float64), 1e-3, "exact", surrogate_beta=10.0)
    kernel = rule.kernel
    error = kernel.causal(torch.as_tensor(y, dtype=torch.float64) - run.spikes[-1].detach())
    fed_back = error @ net.feedforward[1].detach().T  # e_k = sum_i W_ki e_i
    pseudo = 1e-3 * (kernel.anticausal(fed_back) * run.spikes[0]).sum() / len(x)
    (grad,) = torch.autograd.grad(pseudo, net.feedforward[0])
    np.testing.assert_allclose(block.gradients[0], grad.numpy(), atol=1e-12 * grad.abs().max().item())


def test_online_eligibility_traces_equal_the_matrix_form():
    net = _tiny()
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
    v = np.maximum(gamma * g1 ** 2, g2 ** 2)
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
    np.testing.assert_array_equal(regular.gradients[1], plain.gradients[1])


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


def test_bad_arguments():
    with pytest.raises(ConfigError, match="feedback"):
        SuperSpike(_tiny(), feedback="transpose")
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
    losses = resumed.train(x[None], target[None], trials=6, progress=False, checkpoint_dir=tmp_path,
                           checkpoint_every=1, resume=True)
    assert losses == expected
    for a, b in zip(whole_net.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.rms, resumed.rms):
        np.testing.assert_array_equal(a, b)
    other = SuperSpike(SpikingNetwork(30, [12, 5], seed=4), learning_rate=1e-2, feedback=feedback)
    with pytest.raises(CheckpointError, match="other settings"):
        other.train(x[None], target[None], trials=6, progress=False, checkpoint_dir=tmp_path, resume=True)
