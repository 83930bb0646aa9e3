"""Cells: closed forms, peers (torch.nn.LSTMCell / GRUCell), the RGC equations and its 0.5 gates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuromodels.convrnn.cells import (
    CELLS,
    ConvGRUCell,
    ConvLSTMCell,
    ReciprocalGatedCell,
    TimeDecayCell,
    make_cell,
    same_conv,
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
    # deterministic function of (x, state) (exact: the same call twice)
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
    # exact here and below: zero weights give exact zeros, sigmoid(0) = 0.5, and products by 0.5 are exact
    for g in gates.values():
        assert torch.equal(g, torch.full_like(g, 0.5))
    x = torch.randn(2, 4, 5, 5)
    out, (c_new, h_new) = cell(x, state, bypass=torch.randn(2, 2, 5, 5))
    torch.testing.assert_close(c_new, F.elu(0.5 * state[0]), rtol=0, atol=0)  # W_xc = 0
    torch.testing.assert_close(h_new, F.elu(0.5 * state[1] + 0.5 * x), rtol=0, atol=0)
    assert torch.equal(out, h_new)


def test_rgc_follows_the_equations_with_random_weights():
    # bias/scale/offset values exact in float32, so the float64 copy holds the same numbers
    torch.manual_seed(4)
    cell = ReciprocalGatedCell(
        3,
        kernel_size=3,
        bypass_channels=2,
        tau_bias=0.25,
        gate_bias=-0.125,
        tau_scale=0.75,
        gate_scale=0.875,
        tau_offset=0.0625,
        gate_offset=0.125,
    ).double()
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
    cell = ReciprocalGatedCell(
        3, kernel_size=3, bypass_channels=2, tau_bias=0.5, gate_bias=-1.0, depth_separable=depth_separable
    ).double()
    x, c, h = (torch.randn(2, 3, 5, 5, dtype=torch.float64) for _ in range(3))
    r = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    g = cell.gates(x, (c, h), bypass=r)
    out, (c_new, h_new) = cell(x, (c, h), bypass=r)
    expected_c = F.elu((1 - g["g_cc"]) * c + (1 - g["g_hc"]) * cell.W_xc(x))
    torch.testing.assert_close(c_new, expected_c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, F.elu((1 - g["g_hh"]) * h + (1 - g["g_ch"]) * x), rtol=1e-12, atol=1e-12)


def test_median_cell_with_zero_gate_weights_keeps_0461_of_its_state_and_passes_0701_of_its_input():
    # the authors' median cell multiplies by 0.922 (1 - sigmoid(.)) and 0.701 (1 - tanh(.)) directly, and its gate
    # convolutions' own biases start at 0 (their tau_bias / gate_bias do not act): with zero gate weights it keeps
    # 0.922 / 2 of c and h and passes 0.701 of the input (MEDIAN_RGC_OPTIONS before issue 12: 0.986 and 0.995)
    from neuromodels.convrnn.cells import MEDIAN_RGC_OPTIONS

    torch.manual_seed(6)
    cell = make_cell("rgc", 4, **{**MEDIAN_RGC_OPTIONS, "cell_channels": 3}, bypass_channels=4).double()
    with torch.no_grad():
        for conv in (cell.W_cc, cell.W_ch, cell.W_hh, cell.W_hc):
            conv[0].weight.zero_()
            conv[1].weight.zero_()  # the biases keep their initial values
    x, h, r = (torch.randn(2, 4, 9, 9, dtype=torch.float64) for _ in range(3))
    c = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    keep, pass_ = 0.9219348064291611 * 0.5, 0.7006566684988862
    g = cell.gates(x, (c, h), bypass=r)
    for name, expected in (("g_cc", 1 - keep), ("g_hh", 1 - keep), ("g_hc", 1 - pass_), ("g_ch", 1 - pass_)):
        torch.testing.assert_close(g[name], torch.full_like(g[name], expected), rtol=0, atol=1e-15)
    out, (c_new, h_new) = cell(x, (c, h), bypass=r)
    torch.testing.assert_close(c_new, F.elu(keep * c + pass_ * cell.W_xc(F.elu(x))), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_new, F.elu(keep * h + pass_ * (cell.W_xh(F.elu(x)) + r)), rtol=1e-12, atol=1e-12)
    assert abs(keep - 0.461) < 1e-3 and torch.equal(out, h_new)
    # the fast path (forward) equals the plain gate formula with random weights too
    torch.manual_seed(8)
    cell = make_cell("rgc", 4, **{**MEDIAN_RGC_OPTIONS, "cell_channels": 3}, bypass_channels=2).double()
    r = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    g = cell.gates(x, (c, h), bypass=r)
    out, (c_new, h_new) = cell(x, (c, h), bypass=r)
    torch.testing.assert_close(
        c_new, F.elu((1 - g["g_cc"]) * c + (1 - g["g_hc"]) * cell.W_xc(F.elu(x))), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        h_new,
        F.elu((1 - g["g_hh"]) * h + (1 - g["g_ch"]) * (cell.W_xh(F.elu(x)) + cell.W_rh(r))),
        rtol=1e-12,
        atol=1e-12,
    )


# ---- the authors' median cell, transcribed by meaning from neuroailab/convrnns (TensorFlow 1) to plain torch ----
# Values: convrnns/configs/median_rgcell_cfg.py; update: convrnns/utils/median_rgcell.py, ReciprocalGateCell.__call__
# (line numbers below are that file's), _ds_conv and residual_add from convrnns/utils/cell_utils.py. Tensors are NHWC
# and kernels HWIO / [k, k, in, 1] as in TensorFlow, named as their variables (scope/name).
_TAU_OFFSET, _TAU_MULTIPLIER = 0.9219348064291611, -0.9219348064291611  # cfg lines 37-38 (tau_bias unused)
_GATE_OFFSET, _GATE_MULTIPLIER = 0.7006566684988862, -0.7006566684988862  # cfg lines 47-48 (gate_bias unused)


def _tf_same_padding(inp_nchw, k):
    # TensorFlow "SAME", stride 1: k - 1 zeros in all, (k - 1) // 2 before and the rest after
    return F.pad(inp_nchw, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))


def _tf_conv2d_same(inp, kernel):
    """tf.nn.conv2d(inp, kernel, strides=[1, 1, 1, 1], padding="SAME"): inp NHWC, kernel [kh, kw, in, out]."""
    x = _tf_same_padding(inp.permute(0, 3, 1, 2), kernel.shape[0])
    return F.conv2d(x, kernel.permute(3, 2, 0, 1)).permute(0, 2, 3, 1)


def _tf_ds_conv(inp, w, scope):
    """cell_utils._ds_conv(inp, [k, k], bias=True, scope): tf.nn.separable_conv2d (depthwise [k, k, in, 1], then
    pointwise [1, 1, in, out], "SAME") plus its own bias."""
    depthwise = w[scope + "/depthwise_weights"]
    x = _tf_same_padding(inp.permute(0, 3, 1, 2), depthwise.shape[0])
    x = F.conv2d(x, depthwise.permute(2, 3, 0, 1), groups=inp.shape[-1])
    x = F.conv2d(x, w[scope + "/pointwise_weights"].permute(3, 2, 0, 1)).permute(0, 2, 3, 1)
    return x + w[scope + "/bias"]


def _authors_median_step(inputs, prev_cell, prev_out, res_input, w):
    """One call of their ReciprocalGateCell with the median config, no feedback input: (next_out, next_cell)."""
    elu, sigmoid, tanh = F.elu, torch.sigmoid, torch.tanh
    inputs = elu(inputs)  # l. 290 input_activation
    # "cell" scope
    cell_input = _tf_conv2d_same(inputs, w["cell/input_to_cell_weights"]) + w["cell/input_to_cell_bias"]  # 391-433
    cell_tau = _tf_ds_conv(prev_cell, w, "cell/tau")  # l. 497-506, tau_depth_separable
    cell_gate = _tf_ds_conv(prev_out, w, "cell/out_to_cell")  # l. 520-530, gate_depth_separable
    cell_tau, cell_gate = sigmoid(cell_tau), tanh(cell_gate)  # l. 631-632
    next_cell = (_TAU_OFFSET + _TAU_MULTIPLIER * cell_tau) * prev_cell + (
        _GATE_OFFSET + _GATE_MULTIPLIER * cell_gate
    ) * cell_input  # l. 634-638
    next_cell = elu(next_cell)  # l. 644 (layer_norm False)
    # "out" scope
    out_input = _tf_conv2d_same(inputs, w["out/input_to_out_weights"]) + w["out/input_to_out_bias"]  # l. 708-738
    if res_input.shape == out_input.shape:  # l. 768-769 out_residual:
        out_input = out_input + res_input  # residual_add, equal shapes
    else:  # residual_add, 1 x 1 projection
        out_input = out_input + _tf_conv2d_same(res_input, w["out/residual_add_weights"])
    out_tau = _tf_ds_conv(prev_out, w, "out/tau")  # l. 833-842
    out_gate = _tf_ds_conv(prev_cell, w, "out/gate")  # l. 856-867 (cell_to_out False)
    out_tau, out_gate = sigmoid(out_tau), tanh(out_gate)  # l. 985-986
    next_out = (_TAU_OFFSET + _TAU_MULTIPLIER * out_tau) * prev_out + (
        _GATE_OFFSET + _GATE_MULTIPLIER * out_gate
    ) * out_input  # l. 988-990
    return elu(next_out), next_cell  # l. 994


def _authors_weights(channels, cell_channels, bypass_channels, generator):
    def rand(*shape, scale=0.3):
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)

    w = {
        "cell/input_to_cell_weights": rand(2, 2, channels, cell_channels),
        "cell/input_to_cell_bias": rand(cell_channels),
        "out/input_to_out_weights": rand(3, 3, channels, channels),
        "out/input_to_out_bias": rand(channels),
    }
    for scope, n_in, n_out in (
        ("cell/tau", cell_channels, cell_channels),
        ("cell/out_to_cell", channels, cell_channels),
        ("out/tau", channels, channels),
        ("out/gate", cell_channels, channels),
    ):
        w.update(
            {
                scope + "/depthwise_weights": rand(7, 7, n_in, 1),
                scope + "/pointwise_weights": rand(1, 1, n_in, n_out),
                scope + "/bias": rand(n_out),
            }
        )
    if bypass_channels != channels:
        w["out/residual_add_weights"] = rand(1, 1, bypass_channels, channels)
    return w


def _load_authors_weights(cell, w):
    def hwio_to_torch(kernel):  # [kh, kw, in, out] -> (out, in, kh, kw)
        return kernel.permute(3, 2, 0, 1)

    with torch.no_grad():
        for ours, scope in (
            (cell.W_cc, "cell/tau"),
            (cell.W_hc, "cell/out_to_cell"),
            (cell.W_hh, "out/tau"),
            (cell.W_ch, "out/gate"),
        ):
            ours[0].weight.copy_(w[scope + "/depthwise_weights"].permute(2, 3, 0, 1))  # (in, 1, k, k)
            ours[1].weight.copy_(hwio_to_torch(w[scope + "/pointwise_weights"]))
            ours[1].bias.copy_(w[scope + "/bias"])
        cell.W_xc[-1].weight.copy_(hwio_to_torch(w["cell/input_to_cell_weights"]))
        cell.W_xc[-1].bias.copy_(w["cell/input_to_cell_bias"])
        cell.W_xh.weight.copy_(hwio_to_torch(w["out/input_to_out_weights"]))
        cell.W_xh.bias.copy_(w["out/input_to_out_bias"])
        if "out/residual_add_weights" in w:
            cell.W_rh.weight.copy_(hwio_to_torch(w["out/residual_add_weights"]))
        else:
            assert cell.W_rh is None


@pytest.mark.parametrize("bypass_channels", [5, 6])  # 5: residual_add's 1 x 1 projection; 6 = channels: a plain sum
def test_median_cell_equals_a_transcription_of_the_authors_update(bypass_channels):
    """MEDIAN_RGC_OPTIONS with the authors' conv weights gives their ReciprocalGateCell's outputs and states step by
    step (neuroailab/convrnns convrnns/utils/median_rgcell.py lines 223-1001, transcribed above), bypass included.
    Maps of 9 x 9: their _ds_conv would shrink a 7 x 7 kernel on maps smaller than 7 x 7, ours does not. In float64
    the two differ by rounding only (about 1e-14 here); the tolerance 1e-10 is far below any change of meaning."""
    from neuromodels.convrnn.cells import MEDIAN_RGC_OPTIONS

    channels, cell_channels, steps = 6, 4, 6
    generator = torch.Generator().manual_seed(12)
    w = _authors_weights(channels, cell_channels, bypass_channels, generator)
    cell = make_cell(
        "rgc", channels, **{**MEDIAN_RGC_OPTIONS, "cell_channels": cell_channels}, bypass_channels=bypass_channels
    ).double()
    _load_authors_weights(cell, w)
    to_nhwc, to_nchw = (lambda t: t.permute(0, 2, 3, 1)), (lambda t: t.permute(0, 3, 1, 2))
    f64 = {"dtype": torch.float64}
    state = cell.initial_state(2, 9, 9, **f64)
    prev_cell, prev_out = torch.zeros(2, 9, 9, cell_channels, **f64), torch.zeros(2, 9, 9, channels, **f64)
    for _ in range(steps):
        x = torch.randn(2, channels, 9, 9, generator=generator, **f64)
        r = torch.randn(2, bypass_channels, 9, 9, generator=generator, **f64)
        with torch.no_grad():
            out, state = cell(x, state, bypass=r)
        prev_out, prev_cell = _authors_median_step(to_nhwc(x), prev_cell, prev_out, to_nhwc(r), w)
        torch.testing.assert_close(out, to_nchw(prev_out), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(state[0], to_nchw(prev_cell), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(state[1], to_nchw(prev_out), rtol=1e-10, atol=1e-10)
    assert float(out.abs().mean()) > 0.1  # a live state, not one that has decayed to nothing


def test_rgc_options_are_validated():
    with pytest.raises(ConfigError, match="gate_nonlinearity"):
        make_cell("rgc", 4, gate_nonlinearity="relu")
    with pytest.raises(ConfigError, match="bypass_entry"):
        make_cell("rgc", 4, bypass_entry="cell")
    with pytest.raises(ConfigError, match="separate_gate_biases"):
        make_cell("rgc", 4, cell_channels=3)  # one shared per-channel bias cannot serve 3 and 4 channels
    with pytest.raises(ConfigError, match="kernel_size"):
        make_cell("rgc", 4, gate_kernel_size=4)  # only the input convolutions may be even (TensorFlow "SAME")
    # an even input kernel pads like TensorFlow's "SAME": the extra row and column at the bottom and right
    conv = same_conv(1, 1, 2, bias=False, allow_even=True)
    with torch.no_grad():
        conv[-1].weight.fill_(1.0)
    image = torch.arange(9.0).view(1, 1, 3, 3)
    # exact: sums of small integers are exact in float32 in any order
    assert torch.equal(conv(image)[0, 0], torch.tensor([[8.0, 12.0, 7.0], [20.0, 24.0, 13.0], [13.0, 15.0, 8.0]]))
