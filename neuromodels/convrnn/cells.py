"""Convolutional recurrent cells with explicit state (Nayebi et al. 2018, arXiv:1807.00053, section 3 and S1).

Every cell is an ``nn.Module`` that maps the layer's feedforward drive ``x`` (the output of the layer's
convolution, ``(batch, channels, y, x)``) and its previous state to an output of the same shape and a new
state::

    state = cell.initial_state(batch, height, width)          # tuple of zero tensors
    output, state = cell(x, state)                            # one time step
    output, state = cell(x, state, bypass=r)                  # RGC: with the bypass input r (layer input)

Conventions
-----------
* Shapes: ``x`` and ``output`` are ``(batch, channels, height, width)``; every state tensor is
  ``(batch, channels, height, width)`` (the RGC's ``c``: ``cell_channels``); ``bypass`` is
  ``(batch, bypass_channels, height, width)``.
* All recurrent convolutions are "same" convolutions (stride 1, zero padding ``kernel_size // 2``; an even
  RGC input kernel is padded as TensorFlow's "SAME"), so the spatial shape is kept; ``depth_separable=True``
  replaces each ``k x k`` convolution by a depthwise ``k x k`` followed by a pointwise ``1 x 1`` convolution
  (fewer parameters; the authors' searched cells use it).
* ``activation`` is ``"elu"`` (the paper's choice for the RGC), ``"relu"``, ``"tanh"`` or ``"identity"``.
* The zero state is the initial state of every cell (the paper starts every unrolled run from zeros).

Cells (``CELLS`` maps the names to classes):

``feedforward``
                 ``h' = f(x)``. No state. Used for the feedforward baseline and "recurrence off".
``time_decay``
                 ``s' = tau . s + x``, ``h' = f(s')`` with one trainable ``tau = sigmoid(tau_logit)`` per
                 channel (the paper's "time decay" baseline, S1.1: ``tau`` learned, kept in (0, 1) here so that
                 the state cannot blow up over long unrolls; the paper does not say how it constrains tau).
``vanilla``
                 ``h' = f(x + W_hh * h + b)`` (conv vanilla RNN).
``lstm``
                 conv LSTM (Shi et al. 2015 without peepholes): ``[i, f, o, g] = W * [x, h] + b``,
                 ``c' = sigmoid(f) . c + sigmoid(i) . tanh(g)``, ``h' = sigmoid(o) . tanh(c')``.
``gru``
                 conv GRU (Cho et al. 2014): ``z, r = sigmoid(W_z,r * [x, h] + b)``,
                 ``n = tanh(W_xn * x + r . (W_hn * h) + b)``, ``h' = (1 - z) . n + z . h``.
``ugrnn``
                 Update-Gate RNN (Collins et al. 2017, eq. 6): ``g = sigmoid(W_g * [x, h] + b_g)``,
                 ``c = tanh(W_c * [x, h] + b_c)``, ``h' = g . h + (1 - g) . c``.
``intersection``
                 Intersection RNN (Collins et al. 2017, eq. 7): ``y_in = f(W_y * [x, h])``,
                 ``h_in = tanh(W_h * [x, h])``, ``g_y, g_h = sigmoid(W_gy,gh * [x, h])``,
                 output ``y = g_y . x + (1 - g_y) . y_in``, state ``h' = g_h . h + (1 - g_h) . h_in``.
``rgc``
                 Reciprocal Gated Cell (Nayebi et al. 2018, eq. 1-2 in section 3.2 / Fig. 2b), two states
                 ``c`` (cell) and ``h`` (output) that gate each other::

                     c' = f((1 - g_cc) . c + (1 - g_hc) . (W_xc * x + b_xc))
                     h' = f((1 - g_hh) . h + (1 - g_ch) . u),   u = x  [or W_xh * x + b_xh] [+ r or W_rh * r]
                     g_cc = tau_offset  + tau_scale  * sigmoid(W_cc * c + tau_bias)
                     g_hh = tau_offset  + tau_scale  * sigmoid(W_hh * h + tau_bias)
                     g_hc = gate_offset + gate_scale * s(W_hc * h + gate_bias)
                     g_ch = gate_offset + gate_scale * s(W_ch * c [+ W_rh * r] + gate_bias)

                 The "tau" gates decide how much of each state decays, the "gate" gates how much input
                 enters; ``s`` is sigmoid (or tanh, ``gate_nonlinearity``); ``tau_bias``, ``gate_bias``,
                 ``*_scale`` and ``*_offset`` are the knobs of the authors' searched cells (their code multiplies
                 by ``offset' + multiplier * s(.)`` directly, i.e. their ``(offset', multiplier)`` is our
                 ``(1 - offset, -scale)``); with the defaults (bias 0, scale 1, offset 0) and zero weights every
                 gate is exactly 0.5. ``bypass_channels > 0`` adds the layer's input ``r`` (before its feedforward
                 convolution), the paper's "bypass": by default as ``W_rh * r`` in the pre-activation of ``g_ch``,
                 with ``bypass_entry="output"`` into ``u`` as the authors' median cell does. The options
                 ``cell_channels``, ``input_activation`` (applied to ``x`` first), ``h_input_kernel_size``
                 (``W_xh``), ``input_depth_separable`` and ``separate_gate_biases`` (one bias per gate
                 convolution) describe the authors' searched cells; :data:`MEDIAN_RGC_OPTIONS` is their median
                 cell. Without depth-separable convolutions the pairs ``(W_cc, W_ch)`` and ``(W_hh, W_hc)`` are
                 stored as one convolution each (``from_c``, ``from_h``; the same map, fewer kernel calls);
                 :meth:`ReciprocalGatedCell.gate_weights` returns the four kernels.

References: A. Nayebi, D. Bear, J. Kubilius, K. Kar, S. Ganguli, D. Sussillo, J. J. DiCarlo, D. L. K. Yamins,
"Task-Driven Convolutional Recurrent Models of the Visual System", NeurIPS 2018 (arXiv:1807.00053);
J. Collins, J. Sohl-Dickstein, D. Sussillo, "Capacity and trainability in recurrent neural networks", ICLR 2017.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuromodels.errors import ConfigError

__all__ = [
    "CELLS",
    "ConvCell",
    "FeedforwardCell",
    "TimeDecayCell",
    "VanillaRNNCell",
    "ConvLSTMCell",
    "ConvGRUCell",
    "UGRNNCell",
    "IntersectionRNNCell",
    "ReciprocalGatedCell",
    "MEDIAN_RGC_OPTIONS",
    "make_cell",
    "activation_function",
    "same_conv",
]

State = tuple[torch.Tensor, ...]

_ACTIVATIONS = {"elu": F.elu, "relu": F.relu, "tanh": torch.tanh, "identity": lambda v: v}


def activation_function(name: str) -> Any:
    """The element-wise nonlinearity called ``name`` (``elu``, ``relu``, ``tanh``, ``identity``)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}") from None


def same_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    depth_separable: bool = False,
    bias: bool = True,
    allow_even: bool = False,
) -> nn.Module:
    """A stride-1 ``kernel_size`` convolution that keeps the spatial shape (zero padding ``kernel_size // 2``).

    ``depth_separable``: a depthwise ``k x k`` convolution (``groups=in_channels``, no bias) followed by a
    pointwise ``1 x 1`` convolution (with ``bias``); for ``kernel_size == 1`` it is a plain 1 x 1 convolution.
    ``allow_even``: accept an even ``kernel_size``, padded as TensorFlow's ``"SAME"`` does (``(k - 1) // 2`` rows
    and columns before, the rest after: for ``k = 2`` one extra row at the bottom and column on the right);
    the padding is then a leading ``nn.ZeroPad2d`` of an ``nn.Sequential``.
    """
    if kernel_size < 1 or (kernel_size % 2 == 0 and not allow_even):
        raise ConfigError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    even = kernel_size % 2 == 0
    padding = 0 if even else kernel_size // 2
    if depth_separable and kernel_size > 1:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        ]
    else:
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)]
    if even:
        before = (kernel_size - 1) // 2
        after = kernel_size - 1 - before
        layers.insert(0, nn.ZeroPad2d((before, after, before, after)))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class ConvCell(nn.Module):
    """Base class: ``channels`` state/output channels, ``n_states`` state tensors, all zeros at the start."""

    n_states: int = 1

    def __init__(self, channels: int, *, activation: str = "elu") -> None:
        super().__init__()
        if int(channels) < 1:
            raise ConfigError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.activation_name = activation
        self.activation = activation_function(activation)

    def initial_state(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> State:
        """``n_states`` zero tensors ``(batch, channels, height, width)``."""
        dtype = dtype or torch.get_default_dtype()
        return tuple(
            torch.zeros(batch, self.channels, height, width, dtype=dtype, device=device) for _ in range(self.n_states)
        )

    def forward(
        self, x: torch.Tensor, state: State, bypass: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:  # pragma: no cover - abstract
        raise NotImplementedError


class FeedforwardCell(ConvCell):
    """``h' = f(x)``: no memory (the feedforward CNN layer)."""

    n_states = 0

    def forward(self, x, state, bypass=None):
        return self.activation(x), ()


class TimeDecayCell(ConvCell):
    """``s' = tau . s + x``, output ``f(s')``; ``tau = sigmoid(tau_logit)`` per channel, trainable."""

    def __init__(self, channels: int, *, activation: str = "elu", tau_init: float = 0.5, **_: Any) -> None:
        super().__init__(channels, activation=activation)
        if not 0.0 < tau_init < 1.0:
            raise ConfigError(f"tau_init must be in (0, 1), got {tau_init}")
        self.tau_logit = nn.Parameter(torch.full((channels,), math.log(tau_init / (1.0 - tau_init))))

    @property
    def tau(self) -> torch.Tensor:
        return torch.sigmoid(self.tau_logit)

    def forward(self, x, state, bypass=None):
        (s,) = state
        s_new = self.tau.view(1, -1, 1, 1) * s + x
        return self.activation(s_new), (s_new,)


class VanillaRNNCell(ConvCell):
    """``h' = f(x + W_hh * h + b)``."""

    def __init__(
        self, channels: int, *, kernel_size: int = 3, activation: str = "elu", depth_separable: bool = False, **_: Any
    ) -> None:
        super().__init__(channels, activation=activation)
        self.recurrent = same_conv(channels, channels, kernel_size, depth_separable=depth_separable)

    def forward(self, x, state, bypass=None):
        (h,) = state
        h_new = self.activation(x + self.recurrent(h))
        return h_new, (h_new,)


class ConvLSTMCell(ConvCell):
    """Conv LSTM without peepholes; ``f`` gate bias initialised to ``forget_bias`` (1.0, Jozefowicz et al. 2015)."""

    n_states = 2

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        depth_separable: bool = False,
        forget_bias: float = 1.0,
        activation: str = "tanh",
        **_: Any,
    ) -> None:
        super().__init__(channels, activation=activation)
        self.gates = same_conv(2 * channels, 4 * channels, kernel_size, depth_separable=depth_separable)
        bias = self.gates[-1].bias if isinstance(self.gates, nn.Sequential) else self.gates.bias
        with torch.no_grad():
            bias[channels : 2 * channels] += forget_bias

    def forward(self, x, state, bypass=None):
        c, h = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * self.activation(c_new)
        return h_new, (c_new, h_new)


class ConvGRUCell(ConvCell):
    """Conv GRU (Cho et al. 2014, with the reset gate applied after the recurrent convolution as in cuDNN)."""

    def __init__(
        self, channels: int, *, kernel_size: int = 3, depth_separable: bool = False, activation: str = "tanh", **_: Any
    ) -> None:
        super().__init__(channels, activation=activation)
        self.gates = same_conv(2 * channels, 2 * channels, kernel_size, depth_separable=depth_separable)
        self.input_candidate = same_conv(channels, channels, kernel_size, depth_separable=depth_separable)
        self.hidden_candidate = same_conv(channels, channels, kernel_size, depth_separable=depth_separable)

    def forward(self, x, state, bypass=None):
        (h,) = state
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = self.activation(self.input_candidate(x) + r * self.hidden_candidate(h))
        h_new = (1 - z) * n + z * h
        return h_new, (h_new,)


class UGRNNCell(ConvCell):
    """Update-gate RNN (Collins et al. 2017): ``h' = g . h + (1 - g) . tanh(W_c * [x, h] + b_c)``."""

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        depth_separable: bool = False,
        gate_bias: float = 1.0,
        activation: str = "tanh",
        **_: Any,
    ) -> None:
        super().__init__(channels, activation=activation)
        self.gates = same_conv(2 * channels, 2 * channels, kernel_size, depth_separable=depth_separable)
        bias = self.gates[-1].bias if isinstance(self.gates, nn.Sequential) else self.gates.bias
        with torch.no_grad():
            bias[:channels] += gate_bias

    def forward(self, x, state, bypass=None):
        (h,) = state
        g_pre, c_pre = self.gates(torch.cat([x, h], dim=1)).chunk(2, dim=1)
        g = torch.sigmoid(g_pre)
        h_new = g * h + (1 - g) * self.activation(c_pre)
        return h_new, (h_new,)


class IntersectionRNNCell(ConvCell):
    """Intersection RNN (Collins et al. 2017): separate output ``y`` (with a skip of ``x``) and state ``h``."""

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        depth_separable: bool = False,
        gate_bias: float = 1.0,
        activation: str = "elu",
        **_: Any,
    ) -> None:
        super().__init__(channels, activation=activation)
        self.gates = same_conv(2 * channels, 4 * channels, kernel_size, depth_separable=depth_separable)
        bias = self.gates[-1].bias if isinstance(self.gates, nn.Sequential) else self.gates.bias
        with torch.no_grad():
            bias[2 * channels :] += gate_bias

    def forward(self, x, state, bypass=None):
        (h,) = state
        y_pre, h_pre, gy_pre, gh_pre = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        g_y, g_h = torch.sigmoid(gy_pre), torch.sigmoid(gh_pre)
        y = g_y * x + (1 - g_y) * self.activation(y_pre)
        h_new = g_h * h + (1 - g_h) * torch.tanh(h_pre)
        return y, (h_new,)


class ReciprocalGatedCell(ConvCell):
    """Reciprocal Gated Cell (Nayebi et al. 2018, section 3.2): states ``(c, h)``, output ``h'``.

    Parameters
    ----------
    channels: channels of ``x`` and ``h``.
    cell_channels: channels of ``c`` (default ``channels``; the authors' ``cell_depth``). A value other than
        ``channels`` needs ``separate_gate_biases=True`` (a shared per-channel bias cannot serve both sizes).
    kernel_size: of the gate convolutions ``W_cc, W_hh, W_hc, W_ch`` (``gate_kernel_size`` overrides it) and of
        the input convolution ``W_xc`` (``input_kernel_size`` overrides it; it may be even, padded as
        TensorFlow's "SAME", which the authors' median cell needs for its 2 x 2 ``W_xc``).
    h_input_kernel_size: 0 (default): ``x`` enters ``h'`` as it is (the paper's equation); ``k > 0``: through its
        own ``k x k`` convolution ``W_xh`` with bias (the authors' ``input_to_out=True``, ``in_out_filter_size``).
    input_activation: applied to ``x`` before anything else (the authors' ``input_activation``; default identity).
    tau_bias, gate_bias, tau_scale, gate_scale, tau_offset, gate_offset: the gate parametrisation (module doc).
    separate_gate_biases: ``False`` (default): one trainable ``tau_bias`` shared by ``g_cc`` and ``g_hh`` and one
        ``gate_bias`` shared by ``g_hc`` and ``g_ch``; ``True``: each of the four gate convolutions carries its own
        trainable bias, initialised to ``tau_bias`` (``W_cc``, ``W_hh``) or ``gate_bias`` (``W_hc``, ``W_ch``), as
        in the authors' code.
    gate_nonlinearity: ``"sigmoid"`` (default) or ``"tanh"``, the squashing of the cross gates ``g_hc, g_ch``
        (the authors' searched median cell uses tanh there and sigmoid for ``g_cc, g_hh``; see
        :data:`MEDIAN_RGC_OPTIONS`).
    bypass_channels: channels of the bypass input ``r`` (0: no bypass).
    bypass_entry: where ``r`` enters: ``"gate"`` (default): ``W_rh * r`` (a gate-sized convolution without bias)
        joins the pre-activation of ``g_ch`` (the authors' ``residual_to_out_gate``); ``"output"``: ``r`` is added
        to the input of ``h'`` (the authors' ``out_residual``, their ``residual_add``: as it is when it has
        ``channels`` channels, else through a 1 x 1 convolution ``W_rh`` without bias).
    depth_separable: depthwise + pointwise gate convolutions (and bypass convolution); ``input_depth_separable``
        (default: the same) for ``W_xc`` and ``W_xh``.
    activation: ``f`` (ELU in the paper).
    """

    n_states = 2

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        gate_kernel_size: int | None = None,
        input_kernel_size: int | None = None,
        depth_separable: bool = False,
        activation: str = "elu",
        tau_bias: float = 0.0,
        gate_bias: float = 0.0,
        tau_scale: float = 1.0,
        gate_scale: float = 1.0,
        tau_offset: float = 0.0,
        gate_offset: float = 0.0,
        gate_nonlinearity: str = "sigmoid",
        bypass_channels: int = 0,
        cell_channels: int | None = None,
        h_input_kernel_size: int = 0,
        input_activation: str = "identity",
        input_depth_separable: bool | None = None,
        separate_gate_biases: bool = False,
        bypass_entry: str = "gate",
        **_: Any,
    ) -> None:
        super().__init__(channels, activation=activation)
        if gate_nonlinearity not in ("sigmoid", "tanh"):
            raise ConfigError(f"gate_nonlinearity must be 'sigmoid' or 'tanh', got {gate_nonlinearity!r}")
        if bypass_entry not in ("gate", "output"):
            raise ConfigError(f"bypass_entry must be 'gate' or 'output', got {bypass_entry!r}")
        self.cell_channels = int(channels if cell_channels is None else cell_channels)
        if self.cell_channels < 1 or int(h_input_kernel_size) < 0:
            raise ConfigError(
                f"need cell_channels >= 1 and h_input_kernel_size >= 0, got {cell_channels} and {h_input_kernel_size}"
            )
        self.separate_gate_biases = bool(separate_gate_biases)
        if self.cell_channels != self.channels and not self.separate_gate_biases:
            raise ConfigError("cell_channels != channels needs separate_gate_biases=True")
        self.gate_nonlinearity = gate_nonlinearity
        self._gate_squash = torch.sigmoid if gate_nonlinearity == "sigmoid" else torch.tanh
        self.input_activation_name = input_activation
        self.input_activation = activation_function(input_activation)
        self.bypass_entry = bypass_entry
        gk = int(gate_kernel_size or kernel_size)
        ik = int(input_kernel_size or kernel_size)
        cells, sep = self.cell_channels, self.separate_gate_biases
        self.depth_separable = bool(depth_separable)
        input_ds = self.depth_separable if input_depth_separable is None else bool(input_depth_separable)
        # W_cc and W_ch both convolve c, W_hh and W_hc both convolve h: each pair is one convolution with
        # cell_channels + channels outputs (the same map as two convolutions, in fewer and larger kernel calls,
        # which keeps the achieved FLOP/s close to a plain CNN's). Depth-separable pairs keep separate depthwise
        # filters.
        if self.depth_separable:
            self.W_cc = same_conv(cells, cells, gk, depth_separable=True, bias=sep)
            self.W_ch = same_conv(cells, channels, gk, depth_separable=True, bias=sep)
            self.W_hh = same_conv(channels, channels, gk, depth_separable=True, bias=sep)
            self.W_hc = same_conv(channels, cells, gk, depth_separable=True, bias=sep)
        else:
            self.from_c = same_conv(cells, cells + channels, gk, bias=sep)  # outputs [W_cc * c, W_ch * c]
            self.from_h = same_conv(channels, channels + cells, gk, bias=sep)  # outputs [W_hh * h, W_hc * h]
        self.W_xc = same_conv(channels, cells, ik, depth_separable=input_ds, bias=True, allow_even=True)
        self.W_xh = (
            same_conv(
                channels, channels, int(h_input_kernel_size), depth_separable=input_ds, bias=True, allow_even=True
            )
            if h_input_kernel_size
            else None
        )
        self.bypass_channels = int(bypass_channels)
        self.W_rh: nn.Module | None = None
        if self.bypass_channels and bypass_entry == "gate":
            self.W_rh = same_conv(self.bypass_channels, channels, gk, depth_separable=depth_separable, bias=False)
        elif self.bypass_channels and self.bypass_channels != channels:
            self.W_rh = nn.Conv2d(self.bypass_channels, channels, 1, bias=False)
        if sep:
            with torch.no_grad():
                if self.depth_separable:
                    for conv, value in (
                        (self.W_cc, tau_bias),
                        (self.W_hh, tau_bias),
                        (self.W_ch, gate_bias),
                        (self.W_hc, gate_bias),
                    ):
                        conv[-1].bias.fill_(float(value))
                else:
                    self.from_c.bias[:cells].fill_(float(tau_bias))
                    self.from_c.bias[cells:].fill_(float(gate_bias))
                    self.from_h.bias[:channels].fill_(float(tau_bias))
                    self.from_h.bias[channels:].fill_(float(gate_bias))
        else:
            for name, value in (("tau_bias", tau_bias), ("gate_bias", gate_bias)):
                # one trainable bias per channel, initialised to the searched value
                self.register_parameter(name, nn.Parameter(torch.full((channels,), float(value))))
        self.tau_scale, self.gate_scale = float(tau_scale), float(gate_scale)
        self.tau_offset, self.gate_offset = float(tau_offset), float(gate_offset)

    def initial_state(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> State:
        """Zeros ``c`` ``(batch, cell_channels, height, width)`` and ``h`` ``(batch, channels, height, width)``."""
        dtype = dtype or torch.get_default_dtype()
        return (
            torch.zeros(batch, self.cell_channels, height, width, dtype=dtype, device=device),
            torch.zeros(batch, self.channels, height, width, dtype=dtype, device=device),
        )

    def gate_weights(self) -> dict[str, torch.Tensor]:
        """The kernels ``W_cc, W_ch, W_hh, W_hc`` (``(out, in, k, k)``; not depth-separable cells)."""
        if self.depth_separable:
            raise ConfigError("gate_weights() is for cells without depth_separable convolutions")
        sizes_c, sizes_h = [self.cell_channels, self.channels], [self.channels, self.cell_channels]
        w_c, w_h = self.from_c.weight.split(sizes_c, dim=0), self.from_h.weight.split(sizes_h, dim=0)
        return {"W_cc": w_c[0], "W_ch": w_c[1], "W_hh": w_h[0], "W_hc": w_h[1]}

    def _pre_gates(self, c: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.depth_separable:
            return self.W_cc(c), self.W_ch(c), self.W_hh(h), self.W_hc(h)
        return (
            *self.from_c(c).split([self.cell_channels, self.channels], dim=1),
            *self.from_h(h).split([self.channels, self.cell_channels], dim=1),
        )

    def _check_bypass(self, bypass: torch.Tensor | None) -> None:
        if self.bypass_channels and bypass is None:
            raise ConfigError("this ReciprocalGatedCell has a bypass; pass bypass= (the layer input)")

    def gates(self, x: torch.Tensor, state: State, bypass: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The four gates ``g_cc, g_hh, g_hc, g_ch`` (``(batch, cell_channels or channels, y, x)``, in
        (offset, offset + scale))."""
        c, h = state
        self._check_bypass(bypass)
        cc, ch, hh, hc = self._pre_gates(c, h)
        if not self.separate_gate_biases:
            tb, gb = self.tau_bias.view(1, -1, 1, 1), self.gate_bias.view(1, -1, 1, 1)
            cc, ch, hh, hc = cc + tb, ch + gb, hh + tb, hc + gb
        if self.bypass_channels and self.bypass_entry == "gate":
            ch = ch + self.W_rh(bypass)
        return {
            "g_cc": self.tau_offset + self.tau_scale * torch.sigmoid(cc),
            "g_hh": self.tau_offset + self.tau_scale * torch.sigmoid(hh),
            "g_hc": self.gate_offset + self.gate_scale * self._gate_squash(hc),
            "g_ch": self.gate_offset + self.gate_scale * self._gate_squash(ch),
        }

    def _negative_pre_gates(
        self, c: torch.Tensor, h: torch.Tensor, bypass: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """Minus the gate pre-activations ``-(W_cc*c + tau_bias), -(W_ch*c [+ W_rh*r] + gate_bias),
        -(W_hh*h + tau_bias), -(W_hc*h + gate_bias)``: ``1 - sigmoid(z) = sigmoid(-z)``, and negating the small
        kernels costs less than negating the activations."""
        self._check_bypass(bypass)
        if self.depth_separable:
            cc, ch, hh, hc = self._pre_gates(c, h)
            if not self.separate_gate_biases:
                tb, gb = self.tau_bias.view(1, -1, 1, 1), self.gate_bias.view(1, -1, 1, 1)
                cc, ch, hh, hc = cc + tb, ch + gb, hh + tb, hc + gb
            cc, ch, hh, hc = -cc, -ch, -hh, -hc
        else:
            # the gate biases ride in the convolutions' bias (one fused kernel instead of four additions)
            if self.separate_gate_biases:
                bias_c, bias_h = -self.from_c.bias, -self.from_h.bias
            else:
                bias_c = bias_h = -torch.cat([self.tau_bias, self.gate_bias])
            padding = self.from_c.padding
            cc, ch = F.conv2d(c, -self.from_c.weight, bias_c, padding=padding).split(
                [self.cell_channels, self.channels], dim=1
            )
            hh, hc = F.conv2d(h, -self.from_h.weight, bias_h, padding=padding).split(
                [self.channels, self.cell_channels], dim=1
            )
        if self.bypass_channels and self.bypass_entry == "gate":
            ch = ch - self.W_rh(bypass)
        return cc, ch, hh, hc

    @staticmethod
    def _one_minus_gate(
        negative_pre: torch.Tensor, offset: float, scale: float, squash: str = "sigmoid"
    ) -> torch.Tensor:
        # 1 - (offset + scale * s(z)) with z = -negative_pre. sigmoid: for the default gate (offset 0, scale 1)
        # that is sigmoid(-z), one element-wise pass; tanh is odd, so -tanh(z) = tanh(-z).
        if squash == "tanh":
            return (1.0 - offset) + scale * torch.tanh(negative_pre)
        if offset == 0.0 and scale == 1.0:
            return torch.sigmoid(negative_pre)
        return (1.0 - offset) - scale * torch.sigmoid(-negative_pre)

    def _h_input(self, x: torch.Tensor, bypass: torch.Tensor | None) -> torch.Tensor:
        """What ``1 - g_ch`` lets into ``h'``: ``x`` or ``W_xh * x + b_xh``, plus the bypass when it enters there."""
        u = x if self.W_xh is None else self.W_xh(x)
        if self.bypass_channels and self.bypass_entry == "output":
            u = u + (bypass if self.W_rh is None else self.W_rh(bypass))
        return u

    def forward(self, x, state, bypass=None):
        c, h = state
        x = self.input_activation(x)
        cc, ch, hh, hc = self._negative_pre_gates(c, h, bypass)
        keep_c = self._one_minus_gate(cc, self.tau_offset, self.tau_scale)  # 1 - g_cc
        open_c = self._one_minus_gate(hc, self.gate_offset, self.gate_scale, self.gate_nonlinearity)  # 1 - g_hc
        keep_h = self._one_minus_gate(hh, self.tau_offset, self.tau_scale)  # 1 - g_hh
        open_h = self._one_minus_gate(ch, self.gate_offset, self.gate_scale, self.gate_nonlinearity)  # 1 - g_ch
        c_new = self.activation(torch.addcmul(keep_c * c, open_c, self.W_xc(x)))
        h_new = self.activation(torch.addcmul(keep_h * h, open_h, self._h_input(x, bypass)))
        return h_new, (c_new, h_new)


# The searched "median" Reciprocal Gated Cell of Nayebi et al. 2018 as published with the authors' model zoo:
# neuroailab/convrnns, convrnns/configs/median_rgcell_cfg.py (the values, lines 14-51) run by the update in
# convrnns/utils/median_rgcell.py (ReciprocalGateCell.__call__, lines 223-1001). Their update multiplies by
#     keep = tau_offset + tau_multiplier * sigmoid(.)      (0.922 - 0.922 sigmoid, lines 634-638 and 988-990)
#     pass = gate_offset + gate_multiplier * tanh(.)       (0.701 - 0.701 tanh)
# whereas ours writes keep = 1 - g with g = offset + scale * s(.), so their (offset o, multiplier k) is our
# (offset 1 - o, scale -k). Their gate convolutions are depth-separable 7 x 7 (tau_/gate_depth_separable) and each
# carries its own zero-initialised bias (_ds_conv(..., bias=True), lines 497-530 and 833-867); their tau_bias
# 4.147 and gate_bias 2.777 are only added on the non-depth-separable branch and so do not act (lines 508-518,
# 532-542). x first goes through ELU (input_activation, line 290); c receives a 2 x 2 convolution of it
# (input_to_cell, ff_filter_size 2, not depth-separable, with bias, lines 391-433) and h a 3 x 3 one
# (input_to_out, in_out_filter_size 3, lines 695-738); the bypass is added to h's input (out_residual=True,
# residual_add: as it is, or a 1 x 1 convolution without bias when the channels differ, lines 768-769) and
# enters no gate (residual_to_out_gate = residual_to_cell_gate = False); c has cell_depth = 64 channels;
# c and h both through ELU; no layer norm. Use it with the bypass on: LayerSpec(C, cell="rgc",
# cell_options=MEDIAN_RGC_OPTIONS, bypass=True). Not carried over: their feedback entry (the config's 8 x 8
# depth-separable ELU feedback into the input, which their model zoo replaces by a 1 x 1 feedback into h's
# input, model_func.py lines 131-135; ours enters the layer input, docs/convrnn.md "Deviation"), their variance
# scaling initialisation (scale 0.639), weight decay 2e-4, and _ds_conv's shrinking of a 7 x 7 kernel to the map
# size on maps smaller than 7 x 7.
MEDIAN_RGC_OPTIONS: dict[str, Any] = {
    "cell_channels": 64,
    "input_activation": "elu",
    "input_kernel_size": 2,
    "h_input_kernel_size": 3,
    "input_depth_separable": False,
    "gate_kernel_size": 7,
    "depth_separable": True,
    "separate_gate_biases": True,
    "tau_bias": 0.0,
    "gate_bias": 0.0,
    "tau_offset": 1.0 - 0.9219348064291611,
    "tau_scale": 0.9219348064291611,
    "gate_offset": 1.0 - 0.7006566684988862,
    "gate_scale": 0.7006566684988862,
    "gate_nonlinearity": "tanh",
    "bypass_entry": "output",
    "activation": "elu",
}


CELLS: dict[str, type[ConvCell]] = {
    "feedforward": FeedforwardCell,
    "time_decay": TimeDecayCell,
    "vanilla": VanillaRNNCell,
    "lstm": ConvLSTMCell,
    "gru": ConvGRUCell,
    "ugrnn": UGRNNCell,
    "intersection": IntersectionRNNCell,
    "rgc": ReciprocalGatedCell,
}


def make_cell(name: str, channels: int, **options: Any) -> ConvCell:
    """The cell called ``name`` (a key of :data:`CELLS`) with ``channels`` channels and its ``options``.

    Options a cell does not use are ignored (so one option dict can serve every cell type in a search), except
    ``bypass_channels`` > 0 for a cell without a bypass, which is refused.
    """
    if name not in CELLS:
        raise ConfigError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    if options.get("bypass_channels") and name != "rgc":
        raise ConfigError(f"bypass is only defined for the 'rgc' cell, not {name!r}")
    options = dict(options)
    if name == "feedforward":
        options = {k: v for k, v in options.items() if k == "activation"}
    return CELLS[name](channels, **options)
