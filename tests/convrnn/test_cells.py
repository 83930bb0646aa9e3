"""Cells: closed forms, peers (torch.nn.LSTMCell / GRUCell), the RGC equations and its 0.5 gates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuromodels.convrnn.cells import (
    CELLS, ConvGRUCell, ConvLSTMCell, ReciprocalGatedCell, TimeDecayCell, make_cell, same_conv,
)
from neuromodels.errors import ConfigError

torch.set_num_threads(1)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_keeps_shapes_and_starts_from_zero(name):
    torch.manual_seed(0)
    cell = make_cell(name, 5, kernel_size=3)
    state = cell.initial_state(2, 6, 7)
    assert len(state) == cell.n_states and all(torch.equal(s, torch.zeros(2, 5, 6, 7)) for s in state)
    x = torch.randn(2, 5, 6, 7)
    out, new = cell(x, state)
    assert out.shape == (2, 5, 6, 7) and len(new) == cell.n_states
    assert all(s.shape == (2, 5, 6, 7) for s in new)
    # deterministic function of (x, state)
    out2, _ = cell(x, state)
    assert torch.equal(out, out2)


def test_time_decay_closed_form():
    cell = TimeDecayCell(3, activation="identity", tau_init=0.8)
    x = torch.randn(1, 3, 2, 2)
    state = cell.initial_state(1, 2, 2)
    for _ in range(6):
        out, state = cell(x, state)
    # s_n = x (1 - tau^n) / (1 - tau)
    torch.testing.assert_close(out, x * (1 - 0.8**6) / (1 - 0.8), rtol=1e-6, atol=1e-6)
    assert cell.tau_logit.requires_grad


def test_conv_lstm_with_1x1_kernels_equals_torch_lstmcell():
    torch.manual_seed(1)
    c = 4
    cell = ConvLSTMCell(c, kernel_size=1).double()
    peer = torch.nn.LSTMCell(c, c).double()
    w = cell.gates.weight[:, :, 0, 0]
    with torch.no_grad():  # torch's gate order is i, f, g, o; ours i, f, o, g
        order = torch.cat([torch.arange(0, 2 * c), torch.arange(3 * c, 4 * c), torch.arange(2 * c, 3 * c)])
        peer.weight_ih.copy_(w[order, :c])
        peer.weight_hh.copy_(w[order, c:])
        peer.bias_ih.copy_(cell.gates.bias[order])
        peer.bias_hh.zero_()
    x = torch.randn(3, 5, c, dtype=torch.float64)
    state = cell.initial_state(3, 1, 1, dtype=torch.float64)
    h, cc = torch.zeros(3, c, dtype=torch.float64), torch.zeros(3, c, dtype=torch.float64)
    for t in range(5):
        out, state = cell(x[:, t, :, None, None], state)
        h, cc = peer(x[:, t], (h, cc))
        torch.testing.assert_close(out[:, :, 0, 0], h, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(state[0][:, :, 0, 0], cc, rtol=1e-12, atol=1e-12)


def test_conv_gru_with_1x1_kernels_equals_torch_grucell():
    torch.manual_seed(2)
    c = 3
    cell = ConvGRUCell(c, kernel_size=1).double()
    peer = torch.nn.GRUCell(c, c).double()
    wg = cell.gates.weight[:, :, 0, 0]  # ours: z, r from [x, h]
    with torch.no_grad():  # torch: r, z, n
        peer.weight_ih.copy_(torch.cat([wg[c:, :c], wg[:c, :c], cell.input_candidate.weight[:, :, 0, 0]]))
        peer.weight_hh.copy_(torch.cat([wg[c:, c:], wg[:c, c:], cell.hidden_candidate.weight[:, :, 0, 0]]))
        peer.bias_ih.copy_(torch.cat([cell.gates.bias[c:], cell.gates.bias[:c], cell.input_candidate.bias]))
        peer.bias_hh.copy_(torch.cat([torch.zeros(2 * c, dtype=torch.float64), cell.hidden_candidate.bias]))
    x = torch.randn(2, 4, c, dtype=torch.float64)
    state = cell.initial_state(2, 1, 1, dtype=torch.float64)
    h = torch.zeros(2, c, dtype=torch.float64)
    for t in range(4):
        out, state = cell(x[:, t, :, None, None], state)
        h = peer(x[:, t], h)
        torch.testing.assert_close(out[:, :, 0, 0], h, rtol=1e-12, atol=1e-12)


def test_rgc_gates_are_one_half_with_zero_weights():
    torch.manual_seed(3)
    cell = ReciprocalGatedCell(4, kernel_size=3, bypass_channels=2)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
    state = (torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5))
    gates = cell.gates(torch.randn(2, 4, 5, 5), state, bypass=torch.randn(2, 2, 5, 5))
    assert sorted(gates) == ["g_cc", "g_ch", "g_hc", "g_hh"]
    for g in gates.values():
        assert torch.equal(g, torch.full_like(g, 0.5))
    x = torch.randn(2, 4, 5, 5)
    out, (c_new, h_new) = cell(x, state, bypass=torch.randn(2, 2, 5, 5))
    torch.testing.assert_close(c_new, F.elu(0.5 * state[0]), rtol=0, atol=0)   # W_xc = 0
    torch.testing.assert_close(h_new, F.elu(0.5 * state[1] + 0.5 * x), rtol=0, atol=0)
    assert torch.equal(out, h_new)


def test_rgc_follows_the_equations_with_random_weights():
    # bias/scale/offset values exact in float32, so the float64 copy holds the same numbers
    torch.manual_seed(4)
    cell = ReciprocalGatedCell(3, kernel_size=3, bypass_channels=2, tau_bias=0.25, gate_bias=-0.125,
                               tau_scale=0.75, gate_scale=0.875, tau_offset=0.0625, gate_offset=0.125).double()
    x, c, h = (torch.randn(2, 3, 4, 4, dtype=torch.float64) for _ in range(3))
    r = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    conv = lambda w, v, b=None: F.conv2d(v, w, b, padding=1)  # noqa: E731
    sig = torch.sigmoid
    w = cell.gate_weights()
    g_cc = 0.0625 + 0.75 * sig(conv(w["W_cc"], c) + 0.25)
    g_hh = 0.0625 + 0.75 * sig(conv(w["W_hh"], h) + 0.25)
    g_hc = 0.125 + 0.875 * sig(conv(w["W_hc"], h) - 0.125)
    g_ch = 0.125 + 0.875 * sig(conv(w["W_ch"], c) + conv(cell.W_rh.weight, r) - 0.125)
    c_expected = F.elu((1 - g_cc) * c + (1 - g_hc) * conv(cell.W_xc.weight, x, cell.W_xc.bias))
    h_expected = F.elu((1 - g_hh) * h + (1 - g_ch) * x)
    out, (c_new, h_new) = cell(x, (c, h), bypass=r)
    torch.testing.assert_close(c_new, c_expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, h_expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="bypass"):
        cell(x, (c, h))


def test_depth_separable_parameter_count():
    # depthwise k*k*C_in (no bias) + pointwise C_in*C_out + C_out
    conv = same_conv(8, 16, 5, depth_separable=True)
    assert sum(p.numel() for p in conv.parameters()) == 5 * 5 * 8 + 8 * 16 + 16
    assert sum(p.numel() for p in same_conv(8, 16, 5).parameters()) == 5 * 5 * 8 * 16 + 16
    rgc = make_cell("rgc", 8, kernel_size=5, depth_separable=True)
    out, _ = rgc(torch.randn(1, 8, 6, 6), rgc.initial_state(1, 6, 6))
    assert out.shape == (1, 8, 6, 6)
    # 5 depth-separable 5x5 convolutions 8 -> 8 (W_xc with bias) + 2 per-channel biases
    assert sum(p.numel() for p in rgc.parameters()) == 5 * (25 * 8 + 64) + 8 + 2 * 8
    # the plain RGC: 4 gate kernels + W_xc (with bias) + tau and gate biases
    assert sum(p.numel() for p in make_cell("rgc", 8, kernel_size=5).parameters()) == 5 * 25 * 64 + 8 + 2 * 8


def test_bad_cell_options_raise_config_error():
    with pytest.raises(ConfigError, match="cell must be one of"):
        make_cell("gru2", 4)
    with pytest.raises(ConfigError, match="kernel_size"):
        make_cell("vanilla", 4, kernel_size=2)
    with pytest.raises(ConfigError, match="bypass"):
        make_cell("lstm", 4, bypass_channels=3)
    with pytest.raises(ConfigError, match="activation"):
        make_cell("rgc", 4, activation="swish")


@pytest.mark.parametrize("depth_separable", [False, True])
def test_rgc_fast_path_matches_its_gates(depth_separable):
    # forward() computes 1 - g as sigmoid(-z) with the biases inside the convolutions; gates() is the plain formula
    torch.manual_seed(5)
    cell = ReciprocalGatedCell(3, kernel_size=3, bypass_channels=2, tau_bias=0.5, gate_bias=-1.0,
                               depth_separable=depth_separable).double()
    x, c, h = (torch.randn(2, 3, 5, 5, dtype=torch.float64) for _ in range(3))
    r = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    g = cell.gates(x, (c, h), bypass=r)
    out, (c_new, h_new) = cell(x, (c, h), bypass=r)
    expected_c = F.elu((1 - g["g_cc"]) * c + (1 - g["g_hc"]) * cell.W_xc(x))
    torch.testing.assert_close(c_new, expected_c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, F.elu((1 - g["g_hh"]) * h + (1 - g["g_ch"]) * x), rtol=1e-12, atol=1e-12)


def test_median_cell_preset_gates_and_fast_path():
    import math

    from neuromodels.convrnn.cells import MEDIAN_RGC_OPTIONS

    torch.manual_seed(6)
    cell = make_cell("rgc", 4, **MEDIAN_RGC_OPTIONS).double()
    x, c, h = (torch.randn(2, 4, 9, 9, dtype=torch.float64) for _ in range(3))
    g = cell.gates(x, (c, h))
    out, (c_new, h_new) = cell(x, (c, h))
    torch.testing.assert_close(c_new, F.elu((1 - g["g_cc"]) * c + (1 - g["g_hc"]) * cell.W_xc(x)),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, F.elu((1 - g["g_hh"]) * h + (1 - g["g_ch"]) * x), rtol=1e-12, atol=1e-12)
    # offset o and multiplier -o: gates in (0, 2 o) for tanh, (0, o) for sigmoid
    assert float(g["g_cc"].min()) > 0 and float(g["g_cc"].max()) < 0.9219348064291611
    assert float(g["g_ch"].min()) > 0 and float(g["g_ch"].max()) < 2 * 0.7006566684988862
    # with zero recurrent weights the gates are the closed forms o (1 - sigmoid(b)) and o (1 - tanh(b))
    for p in cell.parameters():
        if p.dim() > 1:
            torch.nn.init.zeros_(p)
    g0 = cell.gates(x, (c, h))
    sigmoid = 1 / (1 + math.exp(-4.147336708899556))
    assert torch.allclose(g0["g_cc"], torch.tensor(0.9219348064291611 * (1 - sigmoid), dtype=torch.float64))
    assert torch.allclose(g0["g_hc"],
                          torch.tensor(0.7006566684988862 * (1 - math.tanh(2.776542926439013)), dtype=torch.float64))
    with pytest.raises(ConfigError, match="gate_nonlinearity"):
        make_cell("rgc", 4, gate_nonlinearity="relu")
