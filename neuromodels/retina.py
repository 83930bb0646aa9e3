"""Models of retinal ganglion cells driven by a movie: CNN (McIntosh et al. 2016), LN and GLM baselines.

All models see the stimulus as a *history window*: the last ``history`` frames up to and including the
current bin, ``(batch, history, y, x)``, taken as a view of the movie by
:func:`neuromodels._history.history_view` (never a ``history``-fold copy). They return a firing rate in
expected spikes per bin, ``(batch, cell)``, the quantity a Poisson loss compares with binned counts.

* :class:`RetinaCNN`: the paper's convolutional model and its two variants (latent noise at test time,
  lateral recurrence in the hidden layers).
* :class:`LNModel`: one spatiotemporal linear filter per cell and a pointwise nonlinearity.
* :class:`GLM`: Poisson GLM with a stimulus filter, a spike-history filter and optional coupling between
  cells, with :meth:`GLM.simulate` feeding its own spikes back.

References: L. McIntosh, N. Maheswaranathan, A. Nayebi, S. Ganguli, S. Baccus (2016), "Deep learning models
of the retinal response to natural scenes", NeurIPS 29 (arXiv:1702.01825); the reference implementation is
github.com/baccuslab/deep-retina (``deepretina/models.py``: ``nips_cnn``, ``bn_cnn``, ``linear_nonlinear``);
J. Pillow et al. (2008), "Spatio-temporal correlations and visual signalling in a complete neuronal
population", Nature 454 (the coupled GLM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuromodels._parameters import count_parameters
from neuromodels.errors import ConfigError

__all__ = [
    "RetinaCNN",
    "LNModel",
    "GLM",
    "raised_cosine_basis",
    "GaussianNoise",
    "ParametricSoftplus",
    "FactorizedReadout",
    "SaturatingSoftplus",
    "ValidConv2d",
    "conv2d_valid_fft",
    "build_model",
    "count_parameters",
    "MODELS",
]


# --------------------------------------------------------------------------------------------- building blocks
def conv2d_valid_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` (valid cross-correlation, stride 1) computed through 2-D FFTs.

    ``x``: ``(batch, in, H, W)``; ``weight``: ``(out, in, kh, kw)``; returns ``(batch, out, H - kh + 1,
    W - kw + 1)``, equal to ``F.conv2d`` to float32 rounding (~1e-5 relative).

    Why: the first layer of the retina CNN has 40 input channels and 15x15 kernels, 9,000 multiply-adds per
    output; on CPUs a direct convolution of that shape runs at a small fraction of peak, while in the
    frequency domain the layer is one batched ``(batch, in) @ (in, out)`` product per frequency. An FFT of
    size ``H x W`` suffices for the *valid* part: circular wrap-around only corrupts the first ``kh - 1``
    rows and ``kw - 1`` columns, which are cropped. Complex products are done as one real matrix product on
    ``[re, im]`` blocks, the fastest form on CPU.
    """
    batch, _, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    size = (height, width)
    spectrum_x = torch.fft.rfft2(x, s=size)  # (batch, in, H, W//2+1)
    # cross-correlation = convolution with the flipped kernel
    spectrum_w = torch.fft.rfft2(torch.flip(weight, (-2, -1)), s=size)  # (out, in, H, W//2+1)
    freq_shape = spectrum_x.shape[-2:]
    xf = spectrum_x.flatten(2).permute(2, 0, 1)  # (freq, batch, in)
    wf = spectrum_w.flatten(2).permute(2, 1, 0)  # (freq, in, out)
    lhs = torch.cat([xf.real, xf.imag], dim=-1)  # (freq, batch, 2 in)
    rhs = torch.cat(
        [torch.cat([wf.real, wf.imag], dim=-1), torch.cat([-wf.imag, wf.real], dim=-1)], dim=-2
    )  # (freq, 2 in, 2 out)
    product = torch.bmm(lhs, rhs)  # (freq, batch, 2 out): [re, im]
    spectrum_y = torch.complex(product[..., :out_channels], product[..., out_channels:])
    spectrum_y = spectrum_y.permute(1, 2, 0).reshape(batch, out_channels, *freq_shape)
    y = torch.fft.irfft2(spectrum_y, s=size)[..., kh - 1 :, kw - 1 :]
    if bias is not None:
        y = y + bias[:, None, None]
    return y


class ValidConv2d(nn.Conv2d):
    """A stride-1, unpadded ``nn.Conv2d`` that can compute through FFTs (:func:`conv2d_valid_fft`).

    ``impl``: ``"direct"`` (``F.conv2d``), ``"fft"``, or ``"auto"`` (FFT on CPU when a kernel has at least
    2,000 weights per output channel, where it wins by 10-30x; direct otherwise, e.g. on CUDA with cuDNN).
    The parameters are those of ``nn.Conv2d`` (same ``state_dict`` keys), so weights move freely between
    implementations.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True, impl: str = "auto"
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        if impl not in ("auto", "fft", "direct"):
            raise ConfigError(f"conv impl must be 'auto', 'fft' or 'direct', got {impl!r}")
        self.impl = impl

    def use_fft(self, x: torch.Tensor) -> bool:
        if self.impl == "auto":
            return x.device.type == "cpu" and self.in_channels * self.kernel_size[0] * self.kernel_size[1] >= 2000
        return self.impl == "fft"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_fft(x):
            return conv2d_valid_fft(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias)


class GaussianNoise(nn.Module):
    """Additive Gaussian noise: ``std`` while training (a regulariser), ``eval_std`` at test time.

    ``eval_std > 0`` is the paper's *latent noise* variant: noise injected into hidden units at test time
    makes repeated presentations of one stimulus give different outputs, the model's account of retinal
    trial-to-trial variability (which is sub-Poisson in ganglion cells). Noise draws use torch's global
    generator (seeded by the training loop and saved in its checkpoints).
    """

    def __init__(self, std: float = 0.1, eval_std: float = 0.0) -> None:
        super().__init__()
        if std < 0 or eval_std < 0:
            raise ConfigError(f"noise standard deviations must be >= 0, got {std} and {eval_std}")
        self.std = float(std)
        self.eval_std = float(eval_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = self.std if self.training else self.eval_std
        if std == 0.0:
            return x
        return x + std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}, eval_std={self.eval_std}"


class ParametricSoftplus(nn.Module):
    """``alpha * log(1 + exp(beta * x))`` with a learned ``alpha`` and ``beta`` per cell.

    Initial values ``alpha=0.2, beta=5`` are deep-retina's (``ParametricSoftplus``); with them the function
    starts close to ``relu`` with a smooth knee.
    """

    def __init__(self, n_cells: int, alpha: float = 0.2, beta: float = 5.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((n_cells,), float(alpha)))
        self.beta = nn.Parameter(torch.full((n_cells,), float(beta)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * F.softplus(self.beta * x)


class SaturatingSoftplus(nn.Module):
    """``r * (1 - exp(-softplus(x) / r))``: softplus for rates well below ``r``, never above ``r``.

    ``r`` (``max_rate``, expected spikes per bin) is learned per cell (as its log). A ganglion cell's rate is
    bounded (refractoriness, the spike generator's saturation), while softplus grows without limit: a model
    with a softplus output that learns the small and medium rates of a recording overshoots its largest
    drives (the saccades of a natural movie) by 2-4x. Not in McIntosh et al. 2016 (softplus there).
    """

    def __init__(self, n_cells: int, max_rate: float = 1.0) -> None:
        super().__init__()
        if not max_rate > 0:
            raise ConfigError(f"max_rate must be > 0 spikes per bin, got {max_rate}")
        self.log_max_rate = nn.Parameter(torch.full((n_cells,), math.log(float(max_rate))))

    @property
    def max_rate(self) -> torch.Tensor:
        return self.log_max_rate.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.max_rate
        return -r * torch.expm1(-F.softplus(x) / r)

    def inverse(self, rate: torch.Tensor) -> torch.Tensor:
        """The input giving ``rate`` (which must lie below ``max_rate``)."""
        r = self.max_rate.detach()
        return _inverse_softplus(-r * torch.log1p(-rate / r))

    @torch.no_grad()
    def start_bound(self, max_rate: torch.Tensor, mean_rate: torch.Tensor) -> None:
        """Start the bound at ``max_rate`` (e.g. the largest count per bin in the training data), and at
        least at twice the mean rate, so that the mean rate stays reachable."""
        mean = torch.as_tensor(mean_rate, dtype=torch.float32)
        bound = torch.as_tensor(max_rate, dtype=torch.float32).expand_as(mean)
        self.log_max_rate.copy_(torch.log(torch.maximum(bound, 2.0 * mean)))


def _nonlinearity(name: str, n_cells: int) -> nn.Module:
    if name == "softplus":
        return nn.Softplus()
    if name == "exp":
        return _Exp()
    if name == "parametric_softplus":
        return ParametricSoftplus(n_cells)
    if name == "saturating":
        return SaturatingSoftplus(n_cells)
    raise ConfigError(f"nonlinearity must be 'softplus', 'exp', 'parametric_softplus' or 'saturating', got {name!r}")


class _Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # exp(20) = 5e8 spikes per bin: any larger drive is a diverging fit, not a rate; clamping keeps the
        # Poisson loss finite so the optimiser can come back.
        return torch.exp(torch.clamp(x, max=20.0))


def _drive_for_rate(mean_rate: torch.Tensor, name: str, nonlinearity: nn.Module) -> torch.Tensor:
    """The input at which the output nonlinearity ``name`` gives ``mean_rate`` (clamped to >= 1e-4 per bin)."""
    rate = torch.clamp(torch.as_tensor(mean_rate, dtype=torch.float32), min=1e-4)
    if name == "exp":
        return torch.log(rate)
    if name == "softplus":
        return _inverse_softplus(rate)
    if name == "saturating":
        return nonlinearity.inverse(rate)
    return _inverse_softplus(rate / nonlinearity.alpha) / nonlinearity.beta


def _inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    return value + torch.log(-torch.expm1(-value))


def _check_window(x: torch.Tensor, history: int, frame_shape: tuple[int, int], name: str) -> None:
    if x.dim() != 4 or x.shape[1] != history or tuple(x.shape[2:]) != tuple(frame_shape):
        raise ConfigError(
            f"{name} expects stimulus windows (batch, {history}, {frame_shape[0]}, {frame_shape[1]}), "
            f"got {tuple(x.shape)}"
        )


def _as_pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ConfigError(f"frame_shape must be (y, x), got {value!r}")
    return pair  # type: ignore[return-value]


class FactorizedReadout(nn.Module):
    """Per-cell readout whose weights factorise into *where* and *what* (Klindt et al. 2017, NeurIPS 30).

    ``(batch, channels, h, w) -> (batch, cell)``: ``sum_{c,y,x} mask[cell, y, x] * features[cell, c] *
    hidden[c, y, x] + bias[cell]``, i.e. ``h * w + channels`` weights per cell instead of ``channels * h *
    w``. :attr:`weight` gives the equivalent dense ``(cell, channels * h * w)`` matrix.
    """

    def __init__(self, channels: int, height: int, width: int, n_cells: int, *, bias: bool = True) -> None:
        super().__init__()
        self.shape = (channels, height, width)
        self.mask = nn.Parameter(torch.randn(n_cells, height * width) / (height * width) ** 0.5)
        self.features = nn.Parameter(torch.randn(n_cells, channels) / channels**0.5)
        self.bias = nn.Parameter(torch.zeros(n_cells)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return (self.features[:, :, None] * self.mask[:, None, :]).flatten(1)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        channels = self.shape[0]
        hidden = flat.view(flat.shape[0], channels, -1)  # (batch, channels, h*w)
        pooled = hidden @ self.mask.T  # (batch, channels, cell): each cell's mask over space
        out = (pooled * self.features.T[None]).sum(1)
        return out if self.bias is None else out + self.bias


# -------------------------------------------------------------------------------------------------- RetinaCNN
class RetinaCNN(nn.Module):
    """The convolutional retina model of McIntosh et al. (2016), every size a parameter.

    ``(batch, history, y, x) -> (batch, cell)`` firing rate (expected spikes per bin); with
    ``recurrent=True``, sequences ``(batch, seq, history, y, x) -> (batch, seq, cell)``.

    Architecture (defaults): the last ``history=40`` frames (400 ms at 100 Hz) of a 50x50 movie enter as 40
    input channels; conv ``channels[0]=8`` filters of ``15x15`` -> Gaussian noise -> ReLU -> conv
    ``channels[1]=8`` filters of ``11x11`` -> Gaussian noise -> ReLU -> a dense readout per cell from all
    hidden units -> softplus. Convolutions are unpadded (50 -> 36 -> 26), as in deep-retina.

    Sources of the defaults (github.com/baccuslab/deep-retina, ``deepretina/models.py``):

    * ``channels=(8, 8)``, ``kernel_sizes=(15, 11)``: ``bn_cnn``, the architecture of the published models
      (the NeurIPS 2016 text's ``nips_cnn`` used 16 filters of 15x15 then 8 of 9x9: pass
      ``channels=(16, 8), kernel_sizes=(15, 9)``).
    * ``noise_std=0.1``, ``l2_weight=1e-3`` on every kernel, ``l1_activity=1e-3``: ``nips_cnn`` (Keras
      ``GaussianNoise(0.1)``, ``l2(1e-3)``, ``activity_regularizer=l1(1e-3)``). ``bn_cnn`` uses noise 0.05
      after batch normalisation and ``l2(0.01)``.
    * ``batch_norm=True`` (or ``"unit"``) follows ``bn_cnn``: normalisation per hidden *unit* (channel x
      position, Keras ``BatchNormalization`` on the flattened map) before the noise, and a bias-free readout
      followed by batch normalisation per cell before the softplus. ``batch_norm="channel"`` normalises per
      channel instead (``BatchNorm2d``: 2 parameters per channel rather than per unit).

    Options for short recordings (not in the paper; off by default): ``l1_readout`` puts an L1 penalty on the
    readout's weights (on the spatial mask of a factorised readout), so each cell reads from few hidden units;
    ``readout="factorized"`` (:class:`FactorizedReadout`, Klindt et al. 2017) gives each cell a spatial mask
    times channel weights, ``h * w + channels`` weights instead of ``channels * h * w`` (5,408 -> 684 here).

    Deviation: deep-retina applies the L1 activity penalty to the readout's pre-softplus drive; here
    :meth:`regularization` applies it to the output rate (which is positive, so the penalty is the mean
    predicted count, a pressure toward silence where the data allow it).

    Variants from the paper (both off by default):

    * ``latent_noise_std > 0``: Gaussian noise of that std stays on in the hidden layers at test time, so
      repeated presentations of one stimulus give variable outputs (the paper's account of sub-Poisson
      variability). :meth:`sample` draws such repeats.
    * ``recurrent=True``: lateral recurrent connections within each hidden layer: the pre-activation of a
      hidden map at step ``t`` adds a ``recurrent_kernel_size`` convolution of that layer's own output at
      ``t - 1``. Activity then depends on stimulus history beyond the 40-frame window (the paper uses this
      to produce contrast adaptation). Lateral weights start at zero, i.e. as the feedforward model.
      Inputs are consecutive windows ``(batch, seq, history, y, x)`` (see
      ``fitting.retina_data.RetinaDataset(sequence_length=...)``); the state starts at zero for each
      sequence.

    ``conv_impl``: ``"auto"`` computes the first layer through FFTs on CPU (:class:`ValidConv2d`, 10-30x
    faster there for 40x15x15 kernels; identical results to float32 rounding).

    ``output``: ``"softplus"`` (the paper's) or ``"saturating"`` (:class:`SaturatingSoftplus`, not in the
    paper): softplus bent to a learned maximum rate per cell, so the model cannot predict rates a cell never
    reaches (docs/retina.md: on sample:retina it removes the 2-4x overshoot at natural-movie saccades).
    """

    def __init__(
        self,
        n_cells: int,
        *,
        history: int = 40,
        frame_shape: int | Sequence[int] = (50, 50),
        channels: Sequence[int] = (8, 8),
        kernel_sizes: Sequence[int] = (15, 11),
        noise_std: float = 0.1,
        latent_noise_std: float = 0.0,
        batch_norm: bool | str = False,
        l2_weight: float = 1e-3,
        l1_activity: float = 1e-3,
        l1_readout: float = 0.0,
        readout: str = "dense",
        recurrent: bool = False,
        recurrent_kernel_size: int = 3,
        conv_impl: str = "auto",
        output: str = "softplus",
    ) -> None:
        super().__init__()
        frame = _as_pair(frame_shape)
        channels = tuple(int(c) for c in channels)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if n_cells < 1 or history < 1:
            raise ConfigError(f"n_cells and history must be >= 1, got {n_cells} and {history}")
        if len(channels) == 0 or len(channels) != len(kernel_sizes):
            raise ConfigError(
                f"channels {channels} and kernel_sizes {kernel_sizes} must have the same, non-zero length"
            )
        if recurrent_kernel_size % 2 != 1:
            raise ConfigError(f"recurrent_kernel_size must be odd (same-size maps), got {recurrent_kernel_size}")
        self.n_cells = int(n_cells)
        self.history = int(history)
        self.frame_shape = frame
        self.channels = channels
        self.kernel_sizes = kernel_sizes
        if batch_norm not in (False, True, "unit", "channel"):
            raise ConfigError(f"batch_norm must be False, True/'unit' or 'channel', got {batch_norm!r}")
        self.batch_norm = "unit" if batch_norm is True else batch_norm
        self.l2_weight = float(l2_weight)
        self.l1_activity = float(l1_activity)
        self.l1_readout = float(l1_readout)
        self.recurrent = bool(recurrent)

        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.noises = nn.ModuleList()
        self.laterals = nn.ModuleList()
        self.map_shapes: list[tuple[int, int]] = []
        in_channels, (height, width) = self.history, frame
        for out_channels, size in zip(channels, kernel_sizes):
            height, width = height - size + 1, width - size + 1
            if height < 1 or width < 1:
                raise ConfigError(
                    f"kernel sizes {kernel_sizes} do not fit a {frame[0]}x{frame[1]} frame (unpadded convolutions)"
                )
            self.convs.append(ValidConv2d(in_channels, out_channels, size, impl=conv_impl))
            if self.batch_norm == "unit":
                self.norms.append(nn.BatchNorm1d(out_channels * height * width, eps=1e-3))
            elif self.batch_norm == "channel":
                self.norms.append(nn.BatchNorm2d(out_channels, eps=1e-3))
            else:
                self.norms.append(nn.Identity())
            self.noises.append(GaussianNoise(noise_std, latent_noise_std))
            if recurrent:
                lateral = nn.Conv2d(
                    out_channels, out_channels, recurrent_kernel_size, padding=recurrent_kernel_size // 2, bias=False
                )
                nn.init.zeros_(lateral.weight)
                self.laterals.append(lateral)
            self.map_shapes.append((height, width))
            in_channels = out_channels
        n_hidden = in_channels * height * width
        if readout == "dense":
            self.readout = nn.Linear(n_hidden, self.n_cells, bias=not self.batch_norm)
        elif readout == "factorized":
            self.readout = FactorizedReadout(in_channels, height, width, self.n_cells, bias=not self.batch_norm)
        else:
            raise ConfigError(f"readout must be 'dense' or 'factorized', got {readout!r}")
        self.readout_kind = readout
        self.readout_norm = nn.BatchNorm1d(self.n_cells, eps=1e-3) if self.batch_norm else nn.Identity()
        if output == "softplus":
            self.output = nn.Softplus()
        elif output == "saturating":
            self.output = SaturatingSoftplus(self.n_cells)
        else:
            raise ConfigError(f"output must be 'softplus' or 'saturating', got {output!r}")
        self.output_kind = output

    # hidden layer i applied to a batch of maps; ``lateral_input`` is the layer's previous output (recurrent)
    def _layer(self, i: int, x: torch.Tensor, lateral_input: torch.Tensor | None = None) -> torch.Tensor:
        y = self.convs[i](x)
        if lateral_input is not None:
            y = y + self.laterals[i](lateral_input)
        y = self._normalise(i, y)
        return F.relu(self.noises[i](y))

    def _normalise(self, i: int, y: torch.Tensor) -> torch.Tensor:
        if self.batch_norm == "unit":
            return self.norms[i](y.flatten(1)).view(y.shape)
        return self.norms[i](y)  # per channel (BatchNorm2d) or identity

    def _readout(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.readout_norm(self.readout(hidden.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recurrent:
            return self.forward_sequence(x)[0]
        _check_window(x, self.history, self.frame_shape, "RetinaCNN")
        for i in range(len(self.convs)):
            x = self._layer(i, x)
        return self._readout(x)

    def forward_sequence(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Recurrent model over consecutive windows: ``(batch, seq, history, y, x) -> (batch, seq, cell)``.

        ``state``: the hidden maps of the previous step (one ``(batch, channels, h, w)`` tensor per hidden
        layer; ``None`` = zeros), returned updated so that a long movie can be run in chunks.
        """
        if not self.recurrent:
            raise ConfigError("forward_sequence needs RetinaCNN(recurrent=True)")
        if x.dim() != 5:
            raise ConfigError(
                f"a recurrent RetinaCNN expects sequences (batch, seq, {self.history}, y, x), got {tuple(x.shape)}"
            )
        batch, steps = x.shape[:2]
        _check_window(x[:, 0], self.history, self.frame_shape, "RetinaCNN")
        # The first convolution has no recurrent input: run it on all steps at once, add laterals per step.
        first = self.convs[0](x.flatten(0, 1)).unflatten(0, (batch, steps))
        states: list[torch.Tensor | None] = list(state) if state is not None else [None] * len(self.convs)
        outputs = []
        for t in range(steps):
            h = first[:, t]
            for i in range(len(self.convs)):
                if i > 0:
                    h = self.convs[i](h)
                if states[i] is not None:
                    h = h + self.laterals[i](states[i])
                h = F.relu(self.noises[i](self._normalise(i, h)))
                states[i] = h
            outputs.append(self._readout(h))
        return torch.stack(outputs, dim=1), [s for s in states if s is not None]

    def regularization(self, output: torch.Tensor) -> torch.Tensor:
        """``l2_weight * sum(kernel**2)`` over all convolution, lateral and readout kernels, plus
        ``l1_activity * mean over samples of sum over cells |rate|``, plus ``l1_readout * sum |readout
        weights|`` (a sparse, local readout); the training loop adds it to the loss."""
        total = output.new_zeros(())
        if self.l2_weight:
            weights = [conv.weight for conv in self.convs] + [lat.weight for lat in self.laterals]
            if self.readout_kind == "dense":
                weights.append(self.readout.weight)
            else:  # penalise the factors, not their product (whose gradient vanishes when both are small)
                weights += [self.readout.mask, self.readout.features]
            total = total + self.l2_weight * sum(w.square().sum() for w in weights)
        if self.l1_activity:
            total = total + self.l1_activity * output.abs().flatten(0, -2).sum(-1).mean()
        if self.l1_readout:
            sparse = self.readout.weight if self.readout_kind == "dense" else self.readout.mask
            total = total + self.l1_readout * sparse.abs().sum()
        return total

    @torch.no_grad()
    def init_output_bias(self, mean_rate: torch.Tensor, max_rate: torch.Tensor | None = None) -> None:
        """Start the readout at the cells' mean rate (expected spikes per bin, ``(cell,)``): fewer epochs.

        ``max_rate`` (``(cell,)``, e.g. the largest count per bin in the training data) sets the starting
        bound of an ``output="saturating"`` model (ignored otherwise).
        """
        rate = torch.clamp(torch.as_tensor(mean_rate, dtype=torch.float32), min=1e-4)
        if isinstance(self.output, SaturatingSoftplus):
            if max_rate is not None:
                self.output.start_bound(max_rate, rate)
            target = self.output.inverse(rate)
        else:
            target = _inverse_softplus(rate)
        if self.batch_norm:
            self.readout_norm.bias.copy_(target)
        else:
            self.readout.bias.copy_(target)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, n_repeats: int) -> torch.Tensor:
        """Outputs for ``n_repeats`` repeats of the same input in eval mode: ``(n_repeats, *output shape)``.

        With ``latent_noise_std > 0`` the repeats differ (latent noise); otherwise they are identical.
        """
        was_training = self.training
        self.eval()
        try:
            return torch.stack([self(x) for _ in range(int(n_repeats))])
        finally:
            self.train(was_training)

    @property
    def first_layer_filters(self) -> torch.Tensor:
        """First-layer kernels ``(channel, history, ky, kx)``; ``[:, -1]`` is the weight on the current frame."""
        return self.convs[0].weight.detach()

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``RetinaCNN(**model.config())`` rebuilds this architecture."""
        return {
            "n_cells": self.n_cells,
            "history": self.history,
            "frame_shape": list(self.frame_shape),
            "channels": list(self.channels),
            "kernel_sizes": list(self.kernel_sizes),
            "noise_std": self.noises[0].std,
            "latent_noise_std": self.noises[0].eval_std,
            "batch_norm": self.batch_norm,
            "l2_weight": self.l2_weight,
            "l1_activity": self.l1_activity,
            "l1_readout": self.l1_readout,
            "readout": self.readout_kind,
            "recurrent": self.recurrent,
            "recurrent_kernel_size": self.laterals[0].kernel_size[0] if self.recurrent else 3,
            "conv_impl": self.convs[0].impl,
            "output": self.output_kind,
        }


# ---------------------------------------------------------------------------------------------------- LNModel
class LNModel(nn.Module):
    """Linear-nonlinear model: one spatiotemporal filter per cell, then a pointwise nonlinearity.

    ``(batch, history, y, x) -> (batch, cell)`` rate = ``f(<filter_cell, window> + bias_cell)``.
    ``nonlinearity``: ``"softplus"`` (default), ``"exp"``, ``"parametric_softplus"`` or ``"saturating"``. ``l2_weight=1e-2``
    on the filter is deep-retina's ``linear_nonlinear`` default.

    ``rank=None`` (default): full-rank filters, ``history * y * x`` weights per cell, as the paper's LN
    baseline. ``rank=k``: each filter is a sum of ``k`` space-time separable terms ``temporal_k(t) x
    spatial_k(y, x)`` (``k * (history + y * x)`` weights), the usual constraint when the recording is short:
    with 60 s of data a full 40x50x50 filter mostly fits noise.
    """

    def __init__(
        self,
        n_cells: int,
        *,
        history: int = 40,
        frame_shape: int | Sequence[int] = (50, 50),
        nonlinearity: str = "softplus",
        l2_weight: float = 1e-2,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        frame = _as_pair(frame_shape)
        if rank is not None and rank < 1:
            raise ConfigError(f"rank must be None (full) or >= 1, got {rank}")
        self.n_cells = int(n_cells)
        self.history = int(history)
        self.frame_shape = frame
        self.nonlinearity_name = nonlinearity
        self.l2_weight = float(l2_weight)
        self.rank = None if rank is None else int(rank)
        n_pixels = frame[0] * frame[1]
        # Filters start at zero: a random start of this size (100,000 weights) is a random filter whose output
        # is noise that training must first unlearn. The loss is convex in a full filter, so zero is a fine start.
        if self.rank is None:
            self.linear = nn.Linear(self.history * n_pixels, self.n_cells)
            nn.init.zeros_(self.linear.weight)
        else:
            # separable terms: zero maps times random unit time courses; the maps' gradient is non-zero (it is
            # proportional to the time course) and differs between terms, which breaks their symmetry
            self.spatial = nn.Parameter(torch.zeros(self.n_cells, self.rank, n_pixels))
            temporal = torch.randn(self.n_cells, self.rank, self.history)
            self.temporal = nn.Parameter(temporal / temporal.norm(dim=-1, keepdim=True))
            self.bias = nn.Parameter(torch.zeros(self.n_cells))
        self.nonlinearity = _nonlinearity(nonlinearity, self.n_cells)

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank is None:
            return self.linear(x.flatten(1))
        # (batch, history, pixels) x (cell, rank, pixels) -> (batch, history, cell, rank), then weigh by time
        projected = torch.einsum("bhp,ckp->bhck", x.flatten(2), self.spatial)
        return torch.einsum("bhck,ckh->bc", projected, self.temporal) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_window(x, self.history, self.frame_shape, "LNModel")
        return self.nonlinearity(self._drive(x))

    def regularization(self, output: torch.Tensor) -> torch.Tensor:
        """``l2_weight * sum(filter**2)`` (for ``rank=k``, of the assembled filters)."""
        if self.rank is None:
            return self.l2_weight * self.linear.weight.square().sum()
        return self.l2_weight * self._full_filters().square().sum()

    def _full_filters(self) -> torch.Tensor:
        if self.rank is None:
            return self.linear.weight.view(self.n_cells, self.history, *self.frame_shape)
        full = torch.einsum("ckh,ckp->chp", self.temporal, self.spatial)
        return full.view(self.n_cells, self.history, *self.frame_shape)

    @property
    def filters(self) -> torch.Tensor:
        """The learned filters, ``(cell, history, y, x)``; ``[:, -1]`` weighs the current frame."""
        return self._full_filters().detach()

    @torch.no_grad()
    def init_output_bias(self, mean_rate: torch.Tensor, max_rate: torch.Tensor | None = None) -> None:
        """Start at the cells' mean rate (expected spikes per bin, ``(cell,)``); ``max_rate``: the starting
        bound of a ``"saturating"`` nonlinearity (ignored by the others)."""
        if isinstance(self.nonlinearity, SaturatingSoftplus) and max_rate is not None:
            self.nonlinearity.start_bound(max_rate, mean_rate)
        (self.linear.bias if self.rank is None else self.bias).copy_(
            _drive_for_rate(mean_rate, self.nonlinearity_name, self.nonlinearity)
        )

    def config(self) -> dict[str, Any]:
        return {
            "n_cells": self.n_cells,
            "history": self.history,
            "frame_shape": list(self.frame_shape),
            "nonlinearity": self.nonlinearity_name,
            "l2_weight": self.l2_weight,
            "rank": self.rank,
        }


# -------------------------------------------------------------------------------------------------------- GLM
def raised_cosine_basis(n_basis: int, length: int, *, offset: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Raised-cosine bumps on a log-stretched time axis (Pillow et al. 2005, J Neurosci 25; 2008, Methods).

    Returns ``(length, n_basis)``; row ``lag`` (0 = the current bin) holds the basis functions at that lag.
    Time is stretched as ``u(lag) = log(lag + offset)``; bump ``j`` is ``(1 + cos(pi (u - c_j) / (2 d))) / 2``
    for ``|u - c_j| < 2 d`` and 0 elsewhere, with centres ``c_j`` equally spaced by ``d`` from ``u(0)`` to
    ``u(length - 1)`` (Pillow's width: each bump spans four spacings, so that between the second and the
    second-to-last centre the bumps sum to 2, a constant): the basis represents smooth filters with fine
    resolution at short lags and coarse resolution at long ones, which is how neural filters look.
    ``offset`` (in bins) sets how strongly time is stretched (larger: closer to linear spacing).
    ``n_basis=1`` gives one bump centred at lag 0 that spans the whole window.
    ``normalize=True`` scales each bump to unit L2 norm, so that white noise projected on any bump has the
    variance of one frame (the late, wide bumps would otherwise give inputs several times larger than the
    early ones, and Adam's equal step per weight would swing the drive by as much).
    """
    if n_basis < 1 or length < 1:
        raise ConfigError(f"a raised-cosine basis needs n_basis >= 1 and length >= 1, got {n_basis} and {length}")
    if offset <= 0:
        raise ConfigError(f"the raised-cosine offset must be > 0 bins, got {offset}")
    stretched = torch.log(torch.arange(length, dtype=torch.float64) + offset)
    first, last = float(stretched[0]), float(stretched[-1])
    spacing = (last - first) / (n_basis - 1) if n_basis > 1 else max(last - first, 1e-6) / 2.0
    centres = first + spacing * torch.arange(n_basis, dtype=torch.float64)
    phase = (stretched[:, None] - centres[None, :]) * math.pi / (2.0 * spacing)
    basis = 0.5 * (1.0 + torch.cos(torch.clamp(phase, -math.pi, math.pi)))
    if normalize:
        basis = basis / basis.norm(dim=0, keepdim=True)
    return basis.to(torch.float32)


class GLM(nn.Module):
    """Poisson generalised linear model with spike history and optional coupling (Pillow et al. 2008).

    ``forward(stimulus (batch, history, y, x), past_spikes (batch, spike_history, cell)) -> (batch, cell)``:
    ``rate = exp(<k_cell, stimulus> + sum_lag h_cell[lag] * own spikes[t - lag] (+ coupling) + b_cell)``
    in expected spikes per bin. ``past_spikes[:, j]`` holds bin ``t - spike_history + j``, so the last row is
    bin ``t - 1``: the filter sees only strictly past spikes.

    ``coupling=True`` gives every cell a filter on every other cell's past spikes (``(cell, cell, lag)``);
    otherwise each cell sees only its own history. ``l2_weight`` applies to the (assembled) stimulus filter.
    ``nonlinearity``: ``"exp"`` (default, Pillow et al.), ``"softplus"``, ``"parametric_softplus"`` or
    ``"saturating"`` (:class:`SaturatingSoftplus`) in place of ``exp``.

    **Stimulus filter.** By default ``k`` is a free ``history x y x x`` array per cell (100,000 weights for
    40 frames of 50x50). One minute of spikes cannot constrain that many weights: the filter fits the spike
    noise. Three constraints, combinable, shrink it the way Pillow et al. (2008, Methods) did:

    * ``spatial_downsample=d``: the spatial filter lives on a grid ``d`` times coarser (each weight covers a
      ``d x d`` block of pixels; the stimulus is summed over blocks, zero-padded at the far edges);
    * ``temporal_basis=n``: the time course is a combination of ``n`` raised cosines on a log-stretched
      time axis (:func:`raised_cosine_basis`; Pillow et al. used 10 bumps for 15 frames at 120 Hz);
    * ``rank=k``: the filter is a sum of ``k`` space-time separable terms ``temporal_k(t) spatial_k(y, x)``
      (Pillow et al. used rank 2).

    With ``rank=2, spatial_downsample=2, temporal_basis=8`` a cell has ``2 * (625 + 8) = 1,266`` stimulus
    weights instead of 100,000. A separable filter starts with zero spatial maps and random unit time
    courses: the maps' gradient is then non-zero (it is proportional to the time course) and differs between
    terms, which breaks their symmetry; unconstrained filters start at zero (the log-likelihood is concave in
    them).

    :meth:`simulate` runs the model as a generator, drawing Poisson spikes bin by bin and feeding them back
    through the history and coupling filters, which is how a GLM's refractoriness and bursting appear.
    """

    def __init__(
        self,
        n_cells: int,
        *,
        history: int = 40,
        frame_shape: int | Sequence[int] = (50, 50),
        spike_history: int = 20,
        coupling: bool = False,
        l2_weight: float = 1e-2,
        rank: int | None = None,
        spatial_downsample: int = 1,
        temporal_basis: int | None = None,
        nonlinearity: str = "exp",
    ) -> None:
        super().__init__()
        frame = _as_pair(frame_shape)
        if spike_history < 1:
            raise ConfigError(f"spike_history must be >= 1 bin, got {spike_history}")
        if rank is not None and rank < 1:
            raise ConfigError(f"rank must be None (full) or >= 1, got {rank}")
        if spatial_downsample < 1:
            raise ConfigError(f"spatial_downsample must be >= 1 pixel, got {spatial_downsample}")
        if temporal_basis is not None and not 1 <= temporal_basis <= history:
            raise ConfigError(f"temporal_basis must be None or 1..history={history} functions, got {temporal_basis}")
        self.n_cells = int(n_cells)
        self.history = int(history)
        self.frame_shape = frame
        self.spike_history = int(spike_history)
        self.coupling = bool(coupling)
        self.l2_weight = float(l2_weight)
        self.rank = None if rank is None else int(rank)
        self.spatial_downsample = int(spatial_downsample)
        self.temporal_basis = None if temporal_basis is None else int(temporal_basis)
        self.nonlinearity_name = nonlinearity
        self.nonlinearity = _nonlinearity(nonlinearity, self.n_cells)
        self.constrained = self.rank is not None or self.spatial_downsample > 1 or self.temporal_basis is not None
        if not self.constrained:
            self.stimulus_filter = nn.Linear(self.history * frame[0] * frame[1], self.n_cells)
            nn.init.zeros_(self.stimulus_filter.weight)  # as LNModel: the log-likelihood is concave in it
        else:
            d = self.spatial_downsample
            self.coarse_shape = (-(-frame[0] // d), -(-frame[1] // d))
            n_coarse = self.coarse_shape[0] * self.coarse_shape[1]
            if self.temporal_basis is None:
                basis = torch.eye(self.history)
            else:
                basis = raised_cosine_basis(self.temporal_basis, self.history)
            # rows in window order: index history-1 is the current frame (lag 0)
            self.register_buffer("basis", basis.flip(0).contiguous(), persistent=False)
            n_time = basis.shape[1]
            if self.rank is None:
                self.weight = nn.Parameter(torch.zeros(self.n_cells, n_time, n_coarse))
            else:
                self.spatial = nn.Parameter(torch.zeros(self.n_cells, self.rank, n_coarse))
                temporal = torch.randn(self.n_cells, self.rank, n_time)
                self.temporal = nn.Parameter(temporal / temporal.norm(dim=-1, keepdim=True))
            self.bias = nn.Parameter(torch.zeros(self.n_cells))
        sources = self.n_cells if coupling else 1
        self.history_filter = nn.Parameter(torch.zeros(self.n_cells, sources, self.spike_history))

    # ------------------------------------------------------------------------------------ stimulus filter
    def _coarse(self, windows: torch.Tensor) -> torch.Tensor:
        """``(batch, history, y, x) -> (batch, history, coarse pixels)``: ``d x d`` block sums divided by ``d``.

        Dividing by ``d`` keeps a white-noise input at unit variance per coarse pixel (a block sum of ``d**2``
        independent pixels has standard deviation ``d``), the scale Adam's step size is tuned for.
        """
        d = self.spatial_downsample
        if d == 1:
            return windows.flatten(2)
        (cy, cx), (fy, fx) = self.coarse_shape, self.frame_shape
        padded = F.pad(windows, (0, cx * d - fx, 0, cy * d - fy))
        return padded.view(*windows.shape[:2], cy, d, cx, d).sum((3, 5)).flatten(2) / d

    def _coarse_time_weights(self) -> torch.Tensor:
        """The stimulus filter on the coarse grid, in basis coordinates: ``(cell, n_time, coarse pixels)``."""
        if self.rank is None:
            return self.weight
        return torch.einsum("ckn,ckp->cnp", self.temporal, self.spatial)

    def stimulus_features(self, windows: torch.Tensor) -> torch.Tensor:
        """The stimulus as the filter sees it, ``(batch, n_features)``: the window itself (unconstrained
        filter), or its block sums (``/ d``) projected on the temporal basis, ``n_time x coarse pixels``."""
        if not self.constrained:
            return windows.flatten(1)
        return torch.einsum("bhp,hn->bnp", self._coarse(windows), self.basis).flatten(1)

    def _stimulus_drive(self, windows: torch.Tensor) -> torch.Tensor:
        if not self.constrained:
            return self.stimulus_filter(windows.flatten(1))
        # project on the temporal basis first: (batch, n_time, coarse pixels), then one product per cell
        return self.stimulus_features(windows) @ self._coarse_time_weights().flatten(1).T + self.bias

    @torch.no_grad()
    def init_stimulus_filter(self, sta: torch.Tensor) -> None:
        """Start the stimulus filter at the spike-triggered average ``sta`` ``(cell, n_features)`` (in the
        coordinates of :meth:`stimulus_features`, mean stimulus subtracted), truncated to ``rank`` terms.

        Why the STA: for an exponential nonlinearity and Gaussian stimulus features of covariance ``C``, the
        STA equals ``C k`` exactly (Bussgang; Paninski 2003, Network 14), so on white features (``C`` about
        the identity, which :meth:`stimulus_features` aims at) it is the maximum-likelihood filter up to
        noise; the truncation to ``rank`` separable terms (SVD of each cell's ``time x space`` STA) removes
        much of that noise. Pillow et al. (2008) started their fits the same way. A random start, in
        contrast, lets the two factors of a separable filter fit the spike noise before they find the
        receptive field.
        """
        sta = torch.as_tensor(sta, dtype=torch.float32)
        if not self.constrained:
            self.stimulus_filter.weight.copy_(sta.view_as(self.stimulus_filter.weight))
            return
        shaped = sta.view(self.n_cells, self.basis.shape[1], -1)  # (cell, n_time, coarse pixels)
        if self.rank is None:
            self.weight.copy_(shaped)
            return
        u, sv, vh = torch.linalg.svd(shaped, full_matrices=False)  # u (cell, n_time, r), vh (cell, r, coarse)
        k = min(self.rank, sv.shape[-1])
        self.temporal.zero_()
        self.spatial.zero_()
        self.temporal[:, :k] = u[..., :k].transpose(1, 2)
        self.spatial[:, :k] = sv[:, :k, None] * vh[:, :k]

    @torch.no_grad()
    def scale_stimulus_filter(self, gain: torch.Tensor, bias: torch.Tensor) -> None:
        """Multiply each cell's stimulus filter by ``gain`` ``(cell,)`` and set the constant term to ``bias``."""
        gain = torch.as_tensor(gain, dtype=torch.float32)
        if not self.constrained:
            self.stimulus_filter.weight.mul_(gain[:, None])
        elif self.rank is None:
            self.weight.mul_(gain[:, None, None])
        else:
            self.spatial.mul_(gain[:, None, None])
        self.stimulus_bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def _full_filters(self) -> torch.Tensor:
        if not self.constrained:
            return self.stimulus_filter.weight.view(self.n_cells, self.history, *self.frame_shape)
        coarse = torch.einsum("hn,cnp->chp", self.basis, self._coarse_time_weights())
        coarse = coarse.reshape(self.n_cells, self.history, *self.coarse_shape)
        d = self.spatial_downsample
        full = coarse.repeat_interleave(d, dim=2).repeat_interleave(d, dim=3) / d  # see _coarse: sums / d
        return full[..., : self.frame_shape[0], : self.frame_shape[1]]

    @property
    def filters(self) -> torch.Tensor:
        """Stimulus filters at full resolution, ``(cell, history, y, x)``; ``[:, -1]`` weighs the current frame."""
        return self._full_filters().detach()

    @property
    def stimulus_bias(self) -> torch.Tensor:
        """The constant term ``b`` of the log rate, ``(cell,)``."""
        return self.stimulus_filter.bias if not self.constrained else self.bias

    # ------------------------------------------------------------------------------------------------ model
    def _history_drive(self, past_spikes: torch.Tensor) -> torch.Tensor:
        # past_spikes: (batch, lag, cell) -> drive (batch, cell)
        if self.coupling:
            return torch.einsum("blj,ijl->bi", past_spikes, self.history_filter)
        return torch.einsum("blc,cl->bc", past_spikes, self.history_filter[:, 0])

    def forward(self, stimulus: torch.Tensor, past_spikes: torch.Tensor) -> torch.Tensor:
        _check_window(stimulus, self.history, self.frame_shape, "GLM")
        if past_spikes.dim() != 3 or past_spikes.shape[1:] != (self.spike_history, self.n_cells):
            raise ConfigError(
                f"GLM expects past spikes (batch, {self.spike_history}, {self.n_cells}), got {tuple(past_spikes.shape)}"
            )
        drive = self._stimulus_drive(stimulus) + self._history_drive(past_spikes)
        return self.nonlinearity(drive)

    def regularization(self, output: torch.Tensor) -> torch.Tensor:
        """``l2_weight * sum(k**2)`` over the stimulus filter (for a constrained filter: over its coarse-grid,
        per-frame form, which is the full-resolution filter's sum of squares up to the cropped edge blocks)."""
        if not self.constrained:
            return self.l2_weight * self.stimulus_filter.weight.square().sum()
        per_frame = torch.einsum("hn,cnp->chp", self.basis, self._coarse_time_weights())
        return self.l2_weight * per_frame.square().sum()

    @torch.no_grad()
    def init_output_bias(self, mean_rate: torch.Tensor, max_rate: torch.Tensor | None = None) -> None:
        """Start at the cells' mean rate (expected spikes per bin, ``(cell,)``); ``max_rate``: the starting
        bound of a ``"saturating"`` nonlinearity (ignored by the others)."""
        if isinstance(self.nonlinearity, SaturatingSoftplus) and max_rate is not None:
            self.nonlinearity.start_bound(max_rate, mean_rate)
        self.stimulus_bias.copy_(_drive_for_rate(mean_rate, self.nonlinearity_name, self.nonlinearity))

    @torch.no_grad()
    def stimulus_drive(self, windows: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Log-rate contribution of the stimulus (filter + bias), ``(n_windows, cell)``, batched."""
        parts = [self._stimulus_drive(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)]
        return torch.cat(parts) if parts else windows.new_zeros((0, self.n_cells))

    @torch.no_grad()
    def simulate(
        self,
        windows: torch.Tensor | None = None,
        *,
        drive: torch.Tensor | None = None,
        n_trials: int = 1,
        generator: torch.Generator | None = None,
        initial_spikes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spike trains generated by the model, its own spikes fed back through the history filters.

        ``windows``: ``(time, history, y, x)`` stimulus windows (a history view of the movie), or ``drive``:
        their precomputed :meth:`stimulus_drive` ``(time, cell)``. Returns ``(spikes, rates)``, each
        ``(n_trials, time, cell)``: Poisson counts per bin and the conditional rate that drew them.
        ``initial_spikes`` ``(spike_history, cell)`` seeds the history (zeros by default: silence before the
        first bin). Each bin: ``rate = exp(drive[t] + history filter * past spikes)``, ``count ~
        Poisson(rate)``, then ``count`` enters the history of the next bin.
        """
        if (windows is None) == (drive is None):
            raise ConfigError("GLM.simulate needs either stimulus windows or a precomputed drive")
        if drive is None:
            drive = self.stimulus_drive(windows)
        n_bins = drive.shape[0]
        past = torch.zeros(n_trials, self.spike_history, self.n_cells, dtype=drive.dtype)
        if initial_spikes is not None:
            past[:] = torch.as_tensor(initial_spikes, dtype=drive.dtype)
        spikes = torch.zeros(n_trials, n_bins, self.n_cells, dtype=drive.dtype)
        rates = torch.zeros_like(spikes)
        for t in range(n_bins):
            rate = self.nonlinearity(drive[t] + self._history_drive(past))
            count = torch.poisson(rate, generator=generator)
            spikes[:, t] = count
            rates[:, t] = rate
            past = torch.cat([past[:, 1:], count[:, None]], dim=1)
        return spikes, rates

    def config(self) -> dict[str, Any]:
        return {
            "n_cells": self.n_cells,
            "history": self.history,
            "frame_shape": list(self.frame_shape),
            "spike_history": self.spike_history,
            "coupling": self.coupling,
            "l2_weight": self.l2_weight,
            "rank": self.rank,
            "spatial_downsample": self.spatial_downsample,
            "temporal_basis": self.temporal_basis,
            "nonlinearity": self.nonlinearity_name,
        }


# ---------------------------------------------------------------------------------------------------- factory
MODELS: dict[str, type[nn.Module]] = {"cnn": RetinaCNN, "ln": LNModel, "glm": GLM}


def build_model(kind: str, n_cells: int, **params: Any) -> nn.Module:
    """``RetinaCNN`` / ``LNModel`` / ``GLM`` by name (``"cnn"``, ``"ln"``, ``"glm"``) with its parameters."""
    try:
        cls = MODELS[kind]
    except KeyError:
        raise ConfigError(f"model must be one of {sorted(MODELS)}, got {kind!r}") from None
    try:
        return cls(n_cells, **params)
    except TypeError as err:  # an unknown keyword: name the model and what it accepts
        import inspect

        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "n_cells")]
        raise ConfigError(f"{err}; {cls.__name__} accepts {accepted}") from None
