"""SuperSpike (Zenke & Ganguli 2018, Neural Comput. 30:1514; arXiv:1705.11146) and surrogate-gradient BPTT.

Equation, section and figure numbers are those of the journal article (eq. 2.1-3.5, A.1-A.5).  The authors' code
(github.com/fzenke/pub2018superspike, Auryn C++: ``SuperSpikeConnection``, ``RFSuperSpikeConnection``,
``sim/run_*.sh``) is cited for values the text leaves open.

The network is a :class:`~neuromodels.spiking.SpikingNetwork` of current-based LIF neurons (see
:mod:`neuromodels.spiking.neurons` for the discretisation and Brian2's ordering).  Time is discrete (step ``dt``);
sums over steps times ``dt`` stand for the paper's integrals.

**Error signal** (eq. 2.1, section 3.3.3): the van Rossum distance between output and target rasters,
``L = dt/2 sum_{n,i} e_i[n]^2`` with ``e = alpha * (S_target - S)``, where ``alpha`` is the causal double-exponential
kernel ``k[m] = (exp(-m dt/tau_decay) - exp(-m dt/tau_rise)) / peak`` (``m >= 0``; ``tau_rise = 5 ms``,
``tau_decay = 10 ms``, section 3.3.1; ``peak`` normalises the continuous kernel's maximum to 1, "normalized to unity").

**SuperSpike rule** (eq. 2.5 and 3.3): for output neuron ``i`` and presynaptic ``j``::

    g_ij = dt sum_n e_i[n] lambda_ij[n],   lambda_ij = alpha * ( sigma'(U_i) (eps * S_j) ),
    sigma'(U) = (1 + |beta (U - theta)|)^-2                                   (section 3.3.2)

``U_i[n]`` is the membrane potential compared with the threshold at step ``n``; ``eps * S_j`` is the presynaptic
raster (as it arrives, after the network's axonal delay) filtered by the neuron's own linear propagator (exact or
Euler), i.e. exactly ``dU_i/dw_ij`` with the reset ignored, as in the paper (eq. 2.4).  Hidden unit ``k`` uses the
output error fed back through a matrix ``B`` (section 3.3.4): ``e_k = sum_i B_ki e_i`` with ``B = W_out``
(``symmetric``; products of the weights for deeper nets), a fixed random matrix (``random``) or all-equal entries
(``uniform``).  ``feedback_scale="paper"`` draws ``B`` as the paper does, ``N(0, 1)`` and all ones;
``"normalised"`` (the default) divides both by ``sqrt(n_hidden)``.  Without the regulariser the scale of ``B`` does
not change the learning (RMaxProp divides it out, tested); with it, the scale sets the regulariser's relative weight.
With an axonal delay of ``d`` steps a hidden unit's spike reaches the output ``d`` steps later per layer in between,
so its eligibility trace is delayed by that much before it meets the fed-back error (section 3.3.2: the traces are
delayed "such that it offsets the 0.8 ms axonal delay").

Two ways of computing the same block sum are provided: ``online=True`` carries the eligibility traces
``lambda_ij[n]`` forward in time as the authors' Auryn code does (memory ``batch x n_pre x n_post``); the default
moves the kernel ``alpha`` onto the error (``sum_n e[n] (alpha * x)[n] = sum_m (alpha^T * e)[m] x[m]`` with the
anti-causal filter ``alpha^T``), which turns the sum into one matrix product.  Both equal each other to rounding
(tested), and for the output layer both equal ``-dL/dw`` from autograd through :func:`run_network` with the same
surrogate and a detached reset (tested).

**Per-parameter learning rate** (RMaxProp, section 3.3.6): after every block (one batch of trials) of length
``T``, ``v_ij <- max(gamma v_ij, g_ij^2)`` with ``gamma = exp(-T/tau_rms)`` (``tau_rms = 30 s``, the authors' code),
and ``w_ij <- clip(w_ij + r0 g_ij / (sqrt(v_ij) + eps_rms), -w_max, w_max)`` (clipping: section 3.3.5).

**Regulariser** (eq. 3.4-3.5, section 3.3.7, heterosynaptic): ``g_ij -= rho w_ij dt sum_n z_i[n]^a`` for hidden
units (``a = 4``), with ``z_i`` the postsynaptic spike train filtered with ``tau_het`` (100 ms in the authors' code); it
pulls the weights of over-active hidden units towards 0.  ``rho`` here is in this module's normalisation of the
error term; :func:`paper_rho` converts the paper's ``rho = 1`` (the authors' code's normalisation) into it.

**Presets** (:data:`PRESETS`): ``default`` (dt 1 ms, no refractory period, no delay, no clipping, no regulariser)
and ``paper`` (the paper's dt 0.1 ms, 5 ms refractory period, 0.8 ms axonal delay, weights within +-0.1 V, ``N(0,1)``
and all-ones feedback, ``rho = 1`` in the random-feedback runs, five equidistant target spikes in the timing task).

Deviations from the paper (kept explicit): a block is one batch of trials and every trial starts from rest
(Auryn runs continuously and updates every fixed interval); dimensionless voltages with rest 0 and threshold 1, so
the paper's ``beta = 1/mV`` is ``beta = 10`` here; the reset and the refractory clamp are not differentiated (as in
the paper's derivation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromodels.errors import ConfigError
from neuromodels.spiking.network import SpikingNetwork, delay_in_time, run_network_numpy
from neuromodels.spiking.neurons import delay_steps, propagator

__all__ = [
    "VanRossumKernel",
    "van_rossum_loss",
    "SuperSpike",
    "train_bptt",
    "TaskResult",
    "make_task",
    "run_task",
    "TASKS",
    "FEEDBACK",
    "FEEDBACK_SCALES",
    "feedback_comparison",
    "SuperSpikePreset",
    "PRESETS",
    "get_preset",
    "paper_rho",
    "VOLTS_PER_UNIT",
]

FEEDBACK = ("symmetric", "random", "uniform")
#: ``"normalised"``: random ``N(0, 1/n_hidden)``, uniform ``1/sqrt(n_hidden)``; ``"paper"``: ``N(0, 1)`` and ones
#: (section 3.3.4).
FEEDBACK_SCALES = ("normalised", "paper")
#: One unit of our dimensionless voltage in volts: rest -60 mV -> 0, threshold -50 mV -> 1 (paper Table 1).
VOLTS_PER_UNIT = 0.01


# ----------------------------------------------------------------------------------------------- kernels/filters
@dataclass(frozen=True)
class VanRossumKernel:
    """The double-exponential kernel ``alpha`` on a grid of step ``dt`` (see the module docstring)."""

    dt: float = 1e-3
    tau_rise: float = 5e-3
    tau_decay: float = 10e-3

    def __post_init__(self) -> None:
        if not (0 < self.tau_rise < self.tau_decay):
            raise ConfigError(
                f"van Rossum kernel needs 0 < tau_rise < tau_decay, got {self.tau_rise}, {self.tau_decay}"
            )
        if not self.dt > 0:
            raise ConfigError(f"dt must be > 0, got {self.dt}")

    @property
    def peak(self) -> float:
        tr, td = self.tau_rise, self.tau_decay
        t_peak = tr * td / (td - tr) * math.log(td / tr)
        return math.exp(-t_peak / td) - math.exp(-t_peak / tr)

    @property
    def decays(self) -> tuple[float, float]:
        return math.exp(-self.dt / self.tau_decay), math.exp(-self.dt / self.tau_rise)

    def causal(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``(alpha * x)[n] = sum_{m<=n} k[n-m] x[m]`` along ``dim`` (time)."""
        return self._filter(x, dim, reverse=False)

    def anticausal(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``(alpha^T * x)[m] = sum_{n>=m} k[n-m] x[n]``: the adjoint of :meth:`causal`."""
        return self._filter(x, dim, reverse=True)

    def _filter(self, x: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
        d_decay, d_rise = self.decays
        # unbind, not x[n]: indexing a tensor with a graph gives each step's backward a zero gradient of the whole
        # tensor (O(T^2) in the backward pass); unbind's backward stacks the slices' gradients once
        x = x.movedim(dim, 0).unbind(0)
        slow = torch.zeros_like(x[0])
        fast = torch.zeros_like(x[0])
        out = []
        steps = range(len(x) - 1, -1, -1) if reverse else range(len(x))
        for n in steps:
            slow = slow * d_decay + x[n]
            fast = fast * d_rise + x[n]
            out.append(slow - fast)
        if reverse:
            out.reverse()
        return (torch.stack(out, 0) / self.peak).movedim(0, dim)


def van_rossum_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    dt: float = 1e-3,
    *,
    tau_rise: float = 5e-3,
    tau_decay: float = 10e-3,
    reduction: str = "mean",
) -> torch.Tensor:
    """``dt/2 sum_{n,i} (alpha * (target - output))^2`` per trial, averaged (``"mean"``) or summed over trials.

    ``output``, ``target``: ``(batch, time, neuron)`` spike rasters (0/1, differentiable output allowed).
    """
    if output.shape != target.shape:
        raise ConfigError(f"output and target rasters differ in shape: {tuple(output.shape)} vs {tuple(target.shape)}")
    error = VanRossumKernel(dt, tau_rise, tau_decay).causal(target.to(output.dtype) - output, dim=1)
    per_trial = 0.5 * dt * error.square().sum(dim=(1, 2))
    return per_trial.mean() if reduction == "mean" else per_trial.sum()


def _psp_traces(pre: np.ndarray, params: Any, dt: float, method: str) -> np.ndarray:
    """``eps * S_pre``: ``(batch, time, n_pre)`` raster filtered by the postsynaptic neuron's linear propagator,
    sampled where ``U`` is compared with the threshold (after the state update of step ``n``; a spike of step ``n``
    enters from step ``n+1``).  Equals ``dU/dw`` of the simulation with the reset ignored."""
    prop = propagator(params, dt, method)
    pre_t = np.ascontiguousarray(pre.transpose(1, 0, 2), dtype=np.float64)
    p = np.zeros_like(pre_t[0])
    q = np.zeros_like(pre_t[0])
    out = np.empty_like(pre_t)
    for n in range(pre_t.shape[0]):
        p = p * prop.a_vv + q * prop.a_vi
        q = q * prop.a_ii
        out[n] = p
        q += pre_t[n]
    return out.transpose(1, 0, 2)


def _surrogate_derivative(membrane: np.ndarray, threshold: float, beta: float) -> np.ndarray:
    return 1.0 / (1.0 + np.abs(beta * (membrane - threshold))) ** 2


# ------------------------------------------------------------------------------------------------------ SuperSpike
@dataclass
class BlockResult:
    """One block: per-layer gradients ``g`` (``(n_pre, n_post)``, ascent direction ``-dL/dw``), the loss per trial,
    the output raster and the error signal."""

    gradients: list[np.ndarray]
    loss: float
    output: np.ndarray
    spikes: list[np.ndarray] = field(repr=False, default_factory=list)


SUPERSPIKE_CHECKPOINT = "superspike.pt"


class SuperSpike:
    """The SuperSpike learning rule for a feed-forward :class:`SpikingNetwork` (no recurrent weights).

    Parameters
    ----------
    network: the network to train (weights changed in place).
    learning_rate: ``r0`` of RMaxProp (per-weight step size bound).
    feedback: ``"symmetric"``, ``"random"`` or ``"uniform"`` (hidden layers only).
    feedback_scale: ``"normalised"`` (random ``N(0, 1/n_hidden)``, uniform ``1/sqrt(n_hidden)``) or ``"paper"``
        (``N(0, 1)`` and ones, section 3.3.4); irrelevant for ``symmetric``.
    beta: surrogate steepness per unit of voltage (paper: 1/mV = 10 here).
    tau_rise, tau_decay: van Rossum kernel ``alpha`` (s).
    tau_rms: RMaxProp decay time (s); eps_rms: added to ``sqrt(v)``.
    weight_limit: weights are clipped to ``[-weight_limit, weight_limit]`` (``None``: no clipping).
    regulariser_strength (``rho``), tau_het, regulariser_exponent: the heterosynaptic regulariser on hidden layers
        (``rho`` in this module's normalisation: :func:`paper_rho` converts the paper's).
    online: accumulate with forward eligibility traces (Auryn's way) instead of the equivalent matrix product.
    dtype: float type of the simulation (``"float32"`` or ``"float64"``); the rule itself runs in float64.
    seed: seeds the random feedback matrix.
    """

    def __init__(
        self,
        network: SpikingNetwork,
        *,
        learning_rate: float = 5e-3,
        feedback: str = "symmetric",
        beta: float = 10.0,
        tau_rise: float = 5e-3,
        tau_decay: float = 10e-3,
        tau_rms: float = 30.0,
        eps_rms: float = 1e-12,
        weight_limit: float | None = None,
        regulariser_strength: float = 0.0,
        tau_het: float = 0.1,
        regulariser_exponent: float = 4.0,
        online: bool = False,
        dtype: str = "float64",
        feedback_scale: str = "normalised",
        seed: int = 0,
    ) -> None:
        if feedback not in FEEDBACK:
            raise ConfigError(f"feedback must be one of {', '.join(FEEDBACK)}, got {feedback!r}")
        if feedback_scale not in FEEDBACK_SCALES:
            raise ConfigError(f"feedback_scale must be one of {', '.join(FEEDBACK_SCALES)}, got {feedback_scale!r}")
        if any(network.recurrent_layers):
            raise ConfigError("SuperSpike here trains feed-forward networks; the network has recurrent weights")
        for name, value in (("learning_rate", learning_rate), ("beta", beta), ("tau_rms", tau_rms)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if weight_limit is not None and not weight_limit > 0:
            raise ConfigError(f"weight_limit must be > 0 or None, got {weight_limit}")
        self.network = network
        self.learning_rate = float(learning_rate)
        self.feedback = feedback
        self.feedback_scale = feedback_scale
        self.beta = float(beta)
        self.tau_rms = float(tau_rms)
        self.eps_rms = float(eps_rms)
        self.weight_limit = weight_limit
        self.regulariser_strength = float(regulariser_strength)
        self.tau_het = float(tau_het)
        self.regulariser_exponent = float(regulariser_exponent)
        self.online = bool(online)
        self.dtype = dtype
        self.kernel = VanRossumKernel(network.dt, tau_rise, tau_decay)
        self.rms = [np.zeros(tuple(w.shape)) for w in network.feedforward]
        rng = np.random.default_rng(seed)
        n_out = network.layer_sizes[-1]
        self.feedback_matrices: list[np.ndarray | None] = []
        for n in network.layer_sizes[:-1]:
            scale = 1.0 if feedback_scale == "paper" else 1.0 / math.sqrt(n)
            if feedback == "random":
                self.feedback_matrices.append(rng.standard_normal((n, n_out)) * scale)
            elif feedback == "uniform":
                self.feedback_matrices.append(np.full((n, n_out), scale))
            else:
                self.feedback_matrices.append(None)  # the current forward weights, read at every block

    # -- the rule
    def _feedback(self, layer: int) -> np.ndarray:
        fixed = self.feedback_matrices[layer]
        if fixed is not None:
            return fixed
        matrix = self.network.feedforward[layer + 1].detach().double().numpy()
        for later in self.network.feedforward[layer + 2 :]:
            matrix = matrix @ later.detach().double().numpy()
        return matrix

    def gradients(self, input_spikes: Any, target_spikes: Any) -> BlockResult:
        """Run one block (``(batch, time, n_in)`` inputs, ``(batch, time, n_out)`` targets) and return the
        SuperSpike weight gradients, averaged over the batch (no weight change)."""
        net = self.network
        x = np.asarray(input_spikes)
        target = np.asarray(target_spikes, dtype=np.float64)
        if x.ndim == 2:
            x, target = x[None], target[None]
        if target.shape != (x.shape[0], x.shape[1], net.layer_sizes[-1]):
            raise ConfigError(
                f"target_spikes must be (batch, time, {net.layer_sizes[-1]}) matching the input, "
                f"got {target.shape} for input {x.shape}"
            )
        dt = net.dt
        delay = delay_steps(net.delay, dt)
        run = run_network_numpy(net, x, dt, net.method, dtype=self.dtype, record_membrane=True)
        output = run.spikes[-1].astype(np.float64)
        error = self.kernel.causal(torch.from_numpy(target - output)).numpy()
        loss = float(0.5 * dt * np.square(error).sum(axis=(1, 2)).mean())
        batch = x.shape[0]
        grads = []
        pre = x
        n_layers = len(net.neurons)
        for layer, params in enumerate(net.neurons):
            if layer == n_layers - 1:
                layer_error = error
            else:
                layer_error = error @ self._feedback(layer).T
            psp = _psp_traces(delay_in_time(pre, delay), params, dt, net.method)  # the input as it arrives
            sigma = _surrogate_derivative(run.membrane[layer].astype(np.float64), params.threshold, self.beta)
            # a hidden spike reaches the output `delay` steps later per layer in between: delay the eligibility so
            # that it meets the error it caused (section 3.3.2)
            offset = delay * (n_layers - 1 - layer)
            psp, sigma = delay_in_time(psp, offset), delay_in_time(sigma, offset)
            if self.online:
                g = self._online_sum(layer_error, sigma, psp)
            else:
                back = self.kernel.anticausal(torch.from_numpy(layer_error)).numpy()
                g = dt * np.einsum("btj,bti->ji", psp, back * sigma, optimize=True)
            g /= batch
            if self.regulariser_strength > 0 and layer < n_layers - 1:
                g -= self.regulariser_strength * self._regulariser(run.spikes[layer], layer)
            grads.append(g)
            pre = run.spikes[layer]
        return BlockResult(grads, loss, run.spikes[-1], run.spikes)

    def _online_sum(self, error: np.ndarray, sigma: np.ndarray, psp: np.ndarray) -> np.ndarray:
        """``dt sum_n e_i[n] lambda_ij[n]`` with the eligibility traces carried forward in time (the paper's form)."""
        d_decay, d_rise = self.kernel.decays
        batch, n_steps, n_post = error.shape
        slow = np.zeros((batch, psp.shape[2], n_post))
        fast = np.zeros_like(slow)
        total = np.zeros((psp.shape[2], n_post))
        for n in range(n_steps):
            local = psp[:, n, :, None] * sigma[:, n, None, :]  # sigma'(U_i) (eps * S_j): (batch, pre, post)
            slow = slow * d_decay + local
            fast = fast * d_rise + local
            eligibility = (slow - fast) / self.kernel.peak
            total += self.network.dt * np.einsum("bji,bi->ji", eligibility, error[:, n])
        return total

    def _regulariser(self, spikes: np.ndarray, layer: int) -> np.ndarray:
        decay = math.exp(-self.network.dt / self.tau_het)
        z = np.zeros((spikes.shape[0], spikes.shape[2]))
        total = np.zeros(spikes.shape[2])
        for n in range(spikes.shape[1]):
            z = z * decay + spikes[:, n]
            total += self.network.dt * (z**self.regulariser_exponent).mean(0)
        weights = self.network.feedforward[layer].detach().double().numpy()
        return weights * total[None, :]

    def apply(self, gradients: Sequence[np.ndarray], block_duration: float) -> None:
        """RMaxProp update of every weight from one block's gradients, then clipping."""
        gamma = math.exp(-block_duration / self.tau_rms)
        with torch.no_grad():
            for weights, g, rms in zip(self.network.feedforward, gradients, self.rms):
                np.maximum(gamma * rms, g * g, out=rms)
                step = self.learning_rate * g / (np.sqrt(rms) + self.eps_rms)
                new = weights.detach().double().numpy() + step
                if self.weight_limit is not None:
                    np.clip(new, -self.weight_limit, self.weight_limit, out=new)
                weights.copy_(torch.from_numpy(new).to(weights.dtype))

    def step(self, input_spikes: Any, target_spikes: Any) -> BlockResult:
        """One block: gradients, then the update; returns the block (its loss is before the update)."""
        block = self.gradients(input_spikes, target_spikes)
        self.apply(block.gradients, np.asarray(input_spikes).shape[-2] * self.network.dt)
        return block

    def train(
        self,
        input_spikes: Any,
        target_spikes: Any,
        trials: int,
        *,
        progress: bool | None = None,
        sampler: Any = None,
        checkpoint_dir: Any = None,
        checkpoint_every: int = 10,
        resume: bool = False,
    ) -> list[float]:
        """``trials`` blocks on the same (frozen) inputs and targets, or on ``sampler(trial) -> (inputs, targets)``;
        returns the loss of every block (before its update).

        ``checkpoint_dir``: every ``checkpoint_every`` blocks (and at the end) the weights, the RMaxProp state,
        the feedback matrices and the losses so far are written atomically to ``superspike.pt`` there, with the
        same writer as :func:`neuromodels.fitting.fit`. ``resume=True`` continues from that file to the same
        weights and losses as an uninterrupted run (blocks are deterministic given the trial index, so a
        ``sampler`` must be too); a checkpoint of a run with other settings is refused.
        """
        from tqdm.auto import tqdm

        from neuromodels.fitting.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

        if checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        path = None if checkpoint_dir is None else Path(checkpoint_dir) / SUPERSPIKE_CHECKPOINT
        losses: list[float] = []
        if resume and path is not None and path.is_file():
            state = load_checkpoint(path)
            if state.get("settings") != self._settings():
                raise CheckpointError(
                    f"{path}: written by a SuperSpike run with other settings "
                    f"({state.get('settings')}), not {self._settings()}"
                )
            self._load_state(state)
            losses = [float(v) for v in state["losses"]]
        elif resume and path is None:
            raise ConfigError("resume=True needs a checkpoint_dir")
        bar = tqdm(
            range(len(losses), int(trials)),
            desc="superspike",
            unit="block",
            initial=len(losses),
            total=int(trials),
            disable=None if progress is None else not progress,
        )
        for trial in bar:
            x, y = sampler(trial) if sampler is not None else (input_spikes, target_spikes)
            losses.append(self.step(x, y).loss)
            bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
            if path is not None and (len(losses) % checkpoint_every == 0 or len(losses) == int(trials)):
                save_checkpoint(self._state(losses), path)
        return losses

    # -- checkpoints
    def _settings(self) -> dict[str, Any]:
        return {
            "format": "neuromodels.superspike/1",
            "learning_rate": self.learning_rate,
            "feedback": self.feedback,
            "feedback_scale": self.feedback_scale,
            "delay": float(self.network.delay),
            "beta": self.beta,
            "tau_rms": self.tau_rms,
            "weight_limit": self.weight_limit,
            "regulariser_strength": self.regulariser_strength,
            "online": self.online,
            "dtype": self.dtype,
            "layer_sizes": list(self.network.layer_sizes),
            "n_inputs": int(self.network.n_inputs),
        }

    def _state(self, losses: Sequence[float]) -> dict[str, Any]:
        return {
            "settings": self._settings(),
            "network": self.network.state_dict(),
            "losses": list(losses),
            "rms": [torch.from_numpy(r.copy()) for r in self.rms],
            "feedback_matrices": [None if m is None else torch.from_numpy(m.copy()) for m in self.feedback_matrices],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.rms = [r.double().numpy().copy() for r in state["rms"]]
        self.feedback_matrices = [None if m is None else m.double().numpy().copy() for m in state["feedback_matrices"]]


# --------------------------------------------------------------------------------------------------------- BPTT
def train_bptt(
    network: SpikingNetwork,
    input_spikes: Any,
    target_spikes: Any,
    *,
    epochs: int = 200,
    lr: float = 2e-3,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    tau_rise: float = 5e-3,
    tau_decay: float = 10e-3,
    checkpoint_dir: Any = None,
) -> list[float]:
    """Surrogate-gradient BPTT of the same network on the same van Rossum loss through the framework's training
    loop :func:`neuromodels.fitting.loop.fit` (Adam; one epoch = one pass over the trials); returns the training
    loss of every epoch (the loss of the weights during that epoch, as SuperSpike's block losses)."""
    from neuromodels.fitting.loop import fit

    x = torch.as_tensor(np.asarray(input_spikes), dtype=network.feedforward[0].dtype)
    y = torch.as_tensor(np.asarray(target_spikes), dtype=network.feedforward[0].dtype)
    if x.dim() == 2:
        x, y = x[None], y[None]

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return van_rossum_loss(output, target, network.dt, tau_rise=tau_rise, tau_decay=tau_decay)

    history = fit(
        network,
        (x, y),
        None,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size or len(x),
        lr=lr,
        patience=None,
        lr_patience=10**9,
        restore_best=False,
        seed=seed,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
    )
    network.train(False)
    return list(history["train_loss"])


# -------------------------------------------------------------------------------------------------------- presets
def paper_rho(
    rho: float,
    dt: float,
    *,
    tau_rise: float = 5e-3,
    tau_decay: float = 10e-3,
    beta: float = 10.0,
    volts_per_unit: float = VOLTS_PER_UNIT,
) -> float:
    """The paper's regulariser strength ``rho`` (eq. 3.4; ``rho = 1``, section 3.3.7) in :class:`SuperSpike`'s
    normalisation, for time step ``dt``.

    ``rho`` weighs the regulariser against the error term, so its value depends on how each is normalised.  The
    paper's ``rho = 1`` is the authors' code's (``RFSuperSpikeConnection::process_plasticity``), which adds per step
    ``el_flt e_A - rho w z^a``: the eligibility ``el_flt`` accumulates ``beta_V sigma'(U) psp`` (``beta_V =
    beta / volts_per_unit``, the paper's 1/mV in 1/V) through an exponential of ``tau_rise`` and a unit-gain low-pass
    of ``tau_decay``; the error ``e_A`` passes the +-1 spike differences through two unit-gain low-passes
    (``tau_rise``, ``tau_decay``); ``w`` is in volts.  In terms of our peak-normalised ``lambda`` and ``e``:
    ``el_flt = beta_V c_l lambda`` and ``e_A = c_e e`` with ``c_l = tau_rise peak / (tau_decay - tau_rise)`` and
    ``c_e = dt peak / (tau_decay - tau_rise)``, so the same ratio of the two terms needs
    ``rho_ours = rho volts_per_unit / (beta_V c_l c_e)`` (0.008 for ``rho = 1`` at dt = 0.1 ms).  Checked against a
    transcription of the code's recursions (tests/spiking/test_spiking_superspike.py).
    """
    kernel = VanRossumKernel(dt, tau_rise, tau_decay)
    beta_volts = beta / volts_per_unit
    c_eligibility = tau_rise * kernel.peak / (tau_decay - tau_rise)
    c_error = dt * kernel.peak / (tau_decay - tau_rise)
    return float(rho) * volts_per_unit / (beta_volts * c_eligibility * c_error)


@dataclass(frozen=True)
class SuperSpikePreset:
    """Named simulation and learning settings of the tasks (:func:`make_task`, :func:`run_task`).

    dt: time step (s); refractory: absolute refractory period (s); delay: axonal delay of every connection (s);
    weight_limit: bound on ``|w|`` in our voltage units (``None``: none); feedback_scale: see :class:`SuperSpike`;
    rho: the paper's regulariser strength, applied (converted by :func:`paper_rho`) to the hidden layers of
    random-feedback runs only (0: off); regulariser_exponent, tau_het, tau_rms, eps_rms: as :class:`SuperSpike`;
    timing_targets: the ``timing`` task's target spike times (s); timing_trials: its number of blocks.
    """

    name: str
    dt: float = 1e-3
    refractory: float = 0.0
    delay: float = 0.0
    weight_limit: float | None = None
    feedback_scale: str = "normalised"
    rho: float = 0.0
    regulariser_exponent: float = 4.0
    tau_het: float = 0.1
    tau_rms: float = 30.0
    eps_rms: float = 1e-12
    timing_targets: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    timing_trials: int = 400

    def regulariser_strength(self, feedback: str) -> float:
        """``rho`` for :class:`SuperSpike` in a run with ``feedback``: the paper regularises its random-feedback
        runs only (section 3.3.7 "where mentioned explicitly for experiments with random feedback"; the authors'
        ``sim_rfb.cpp`` sets ``regstrength = 1`` on the hidden layer, ``sim_symfb.cpp`` 0)."""
        if feedback != "random" or self.rho == 0:
            return 0.0
        return paper_rho(self.rho, self.dt)


#: ``default``: what the reproductions in docs/spiking.md were first run with.  ``paper``: Zenke & Ganguli 2018's
#: settings - dt 0.1 ms (section 3), refractory period 5 ms (Table 1, section 3.1), axonal delay 0.8 ms (section 3.1;
#: Auryn's MINDELAY of 8 steps), weights within +-0.1 (section 3.3.5; volts in the authors' code, ``wmax = 0.1``,
#: so +-10 of our units of 10 mV), ``N(0,1)`` / all-ones feedback (section 3.3.4), ``rho = 1``, ``a = 4`` (section
#: 3.3.7), ``tau_het = 100 ms``, ``tau_rms = 30 s`` and ``eps = 1e-12`` (the authors' code and run scripts), five
#: equidistant target spikes (section 4, Fig. 2: at 83, 166, 249, 332, 415 ms, the benchmark suite's
#: ``precise_timing/poisson/target.ras``, github.com/fzenke/ssbm) and 500 trials (section 4).
PRESETS: dict[str, SuperSpikePreset] = {
    "default": SuperSpikePreset("default"),
    "paper": SuperSpikePreset(
        "paper",
        dt=1e-4,
        refractory=5e-3,
        delay=0.8e-3,
        weight_limit=0.1 / VOLTS_PER_UNIT,
        feedback_scale="paper",
        rho=1.0,
        timing_targets=(0.083, 0.166, 0.249, 0.332, 0.415),
        timing_trials=500,
    ),
}


def get_preset(preset: str | SuperSpikePreset) -> SuperSpikePreset:
    """The preset named ``preset`` (or ``preset`` itself)."""
    if isinstance(preset, SuperSpikePreset):
        return preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    return PRESETS[preset]


# ---------------------------------------------------------------------------------------------------------- tasks
TASKS = ("timing", "raster", "xor")


@dataclass
class TaskResult:
    """Outcome of :func:`run_task`: block losses, the final output raster of the first trial and its target."""

    task: str
    method: str
    feedback: str
    losses: list[float]
    output: np.ndarray
    target: np.ndarray
    dt: float
    extra: dict[str, Any] = field(default_factory=dict)
    network: Any = field(default=None, repr=False)
    inputs: Any = field(default=None, repr=False)

    @property
    def loss_ratio(self) -> float:
        tail = float(np.mean(self.losses[-max(1, len(self.losses) // 20) :]))
        return float(self.losses[0] / tail) if tail > 0 else math.inf

    def summary(self) -> dict[str, Any]:
        final = float(np.mean(self.losses[-max(1, len(self.losses) // 20) :]))
        return {
            "initial_loss": float(self.losses[0]),
            "final_loss": final,
            "loss_ratio": self.loss_ratio,
            "trials": len(self.losses),
            "dt": self.dt,
            **self.extra,
        }


def _glyph_raster(n_neurons: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """A target raster drawn from a glyph (a smiling face) on a ``(time, neuron)`` grid, thinned so every neuron
    fires at most once per 10 steps: the stand-in for the paper's Radcliffe Camera picture."""
    t = np.linspace(-1, 1, n_steps)[:, None]
    y = np.linspace(-1, 1, n_neurons)[None, :]
    r = np.sqrt(t**2 + y**2)
    ring = np.abs(r - 0.85) < 0.06
    eyes = (np.sqrt((t + 0.35) ** 2 + (y - 0.35) ** 2) < 0.12) | (np.sqrt((t - 0.35) ** 2 + (y - 0.35) ** 2) < 0.12)
    mouth = (np.abs(np.sqrt(t**2 + (y - 0.1) ** 2) - 0.5) < 0.05) & (y < -0.05)
    image = ring | eyes | mouth
    raster = np.zeros((n_steps, n_neurons), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for neuron in range(n_neurons):
        last = -(10**9)
        for step in np.flatnonzero(image[:, neuron]):
            if step - last >= 10 + rng.integers(0, 4):
                raster[step, neuron] = 1
                last = step
    return raster


def _on_grid(raster: np.ndarray, factor: int) -> np.ndarray:
    """A ``(..., time, n)`` raster of 1 ms steps on a grid ``factor`` times finer, same spike times (step ``m`` ->
    step ``factor m``)."""
    if factor == 1:
        return raster
    out = np.zeros(raster.shape[:-2] + (raster.shape[-2] * factor, raster.shape[-1]), dtype=raster.dtype)
    out[..., ::factor, :] = raster
    return out


def make_task(
    name: str, *, seed: int = 0, n_hidden: int | None = None, preset: str | SuperSpikePreset = "default"
) -> dict[str, Any]:
    """Inputs, targets and a network for a named task (all seeded), under a :data:`PRESETS` entry.

    * ``timing``: one neuron, 100 frozen Poisson inputs (10 Hz, 500 ms); target spikes at the preset's
      ``timing_targets`` (default 100, 200, 300, 400 ms; ``paper``: five equidistant spikes as in the paper's
      Fig. 2); ``timing_trials`` blocks (400; ``paper`` 500), ``r0 = 0.02``.
    * ``raster``: 200 frozen Poisson inputs (5 Hz, 500 ms) -> 100 hidden -> 200 outputs; target raster drawn from
      a glyph (a small stand-in for the paper's complex-pattern task, Figs. 6-7, and the authors' Radcliffe Camera
      demo); 200 blocks, ``r0 = 0.01``.
    * ``xor``: two groups of 50 inputs each play one of two frozen Poisson patterns (100 ms); the output neuron must
      fire at 60 and 80 ms when the two patterns differ and stay silent when they match (all four combinations
      in each block) - not solvable by one LIF layer (the summed PSPs of the four cases cannot put the two
      "differ" cases above threshold and the two "match" cases below it at the same time), so the 4 hidden units
      must learn conjunctions: the task on which feedback to hidden units matters (compare the paper's Fig. 5).

    Inputs and targets are drawn on a 1 ms grid; with a finer preset ``dt`` (``paper``: 0.1 ms) the same spike
    times are placed on the finer grid, so the presets differ only in their settings.  The network carries the
    preset's ``dt``, refractory period and axonal delay.
    """
    from neuromodels.spiking.inputs import frozen_poisson
    from neuromodels.spiking.neurons import LIFParameters

    chosen = get_preset(preset)
    grid = 1e-3
    factor = int(round(grid / chosen.dt))
    if factor < 1 or abs(factor * chosen.dt - grid) > 1e-9 * grid:
        raise ConfigError(f"the preset's dt must divide 1 ms, got {chosen.dt}")
    settings = {
        "neuron": LIFParameters(refractory=chosen.refractory),
        "dt": chosen.dt,
        "delay": chosen.delay,
        "seed": seed,
    }
    if name == "timing":
        n_steps = 500
        x = frozen_poisson(100, 10.0, n_steps * grid, grid, seed=seed)
        y = np.zeros((1, n_steps * factor, 1), dtype=np.uint8)
        y[0, [int(round(t / chosen.dt)) for t in chosen.timing_targets], 0] = 1
        net = SpikingNetwork(100, [1], weight_mean=0.5, weight_std=1.0, **settings)
        return {
            "inputs": _on_grid(x, factor),
            "targets": y,
            "network": net,
            "trials": chosen.timing_trials,
            "lr": 2e-2,
            "bptt_lr": 1e-2,
            "preset": chosen,
        }
    if name == "raster":
        n_steps = 500
        x = frozen_poisson(200, 5.0, n_steps * grid, grid, seed=seed)
        y = _glyph_raster(200, n_steps, seed)[None]
        net = SpikingNetwork(200, [n_hidden or 100, 200], weight_mean=1.0, weight_std=1.0, **settings)
        return {
            "inputs": _on_grid(x, factor),
            "targets": _on_grid(y, factor),
            "network": net,
            "trials": 200,
            "lr": 1e-2,
            "bptt_lr": 5e-3,
            "preset": chosen,
        }
    if name == "xor":
        n_steps = 100
        patterns = [frozen_poisson(50, 20.0, n_steps * grid, grid, seed=seed * 10 + k)[0] for k in range(4)]
        xs, ys = [], []
        for a in (0, 1):
            for b in (0, 1):
                xs.append(np.concatenate([patterns[a], patterns[2 + b]], axis=1))
                target = np.zeros((n_steps, 1), dtype=np.uint8)
                if a != b:
                    target[[60, 80], 0] = 1
                ys.append(target)
        net = SpikingNetwork(100, [n_hidden or 4, 1], weight_mean=0.5, weight_std=1.0, **settings)
        return {
            "inputs": _on_grid(np.stack(xs), factor),
            "targets": _on_grid(np.stack(ys), factor),
            "network": net,
            "trials": 600,
            "lr": 1e-2,
            "bptt_lr": 5e-3,
            "preset": chosen,
        }
    raise ConfigError(f"unknown task {name!r} (known: {', '.join(TASKS)})")


def run_task(
    name: str,
    *,
    method: str = "superspike",
    feedback: str = "symmetric",
    trials: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    learning_rate: float | None = None,
    n_hidden: int | None = None,
    preset: str | SuperSpikePreset = "default",
) -> TaskResult:
    """Train the task's network with SuperSpike (``feedback`` for hidden units) or BPTT and return the losses.

    ``preset`` (:data:`PRESETS`) sets the task's simulation (see :func:`make_task`) and SuperSpike's weight bound,
    feedback scale, regulariser and RMaxProp constants; BPTT uses only the simulation settings (no bound)."""
    if method not in ("superspike", "bptt"):
        raise ConfigError(f"method must be 'superspike' or 'bptt', got {method!r}")
    task = make_task(name, seed=seed, n_hidden=n_hidden, preset=preset)
    chosen = task["preset"]
    net, x, y = task["network"], task["inputs"], task["targets"]
    n_trials = int(trials or task["trials"])
    torch.manual_seed(seed)
    if method == "superspike":
        rule = SuperSpike(
            net,
            learning_rate=learning_rate or task["lr"],
            feedback=feedback,
            seed=seed,
            feedback_scale=chosen.feedback_scale,
            weight_limit=chosen.weight_limit,
            regulariser_strength=chosen.regulariser_strength(feedback),
            regulariser_exponent=chosen.regulariser_exponent,
            tau_het=chosen.tau_het,
            tau_rms=chosen.tau_rms,
            eps_rms=chosen.eps_rms,
        )
        losses = rule.train(x, y, n_trials, progress=progress)
    else:
        losses = train_bptt(
            net, x, y, epochs=n_trials, lr=learning_rate or task["bptt_lr"], seed=seed, progress=bool(progress)
        )
    final = run_network_numpy(net, x, net.dt, net.method)
    output = final.spikes[-1]
    extra = {"output_spikes": int(output.sum()), "target_spikes": int(np.asarray(y).sum()), "preset": chosen.name}
    if name == "xor":
        fired = output.sum(axis=(1, 2)) > 0
        should = np.asarray(y).sum(axis=(1, 2)) > 0
        extra["xor_correct"] = int((fired == should).sum())
    return TaskResult(
        name,
        method,
        feedback,
        [float(v) for v in losses],
        output[0],
        np.asarray(y)[0],
        net.dt,
        extra,
        network=net,
        inputs=x,
    )


def feedback_comparison(
    seeds: Sequence[int] = (0, 1, 2),
    trials: int = 600,
    *,
    task: str = "xor",
    feedbacks: Sequence[str] = FEEDBACK,
    progress: bool | None = False,
    preset: str | SuperSpikePreset = "default",
) -> dict[str, Any]:
    """The paper's feedback comparison (Figs. 4, 5 and 7): train the hidden-layer ``task`` with each feedback type
    for every seed; returns per-feedback loss curves, final losses (mean of the last 10% of blocks) and, for
    ``xor``, the number of correctly answered input combinations (out of ``4 * len(seeds)``)."""
    out: dict[str, Any] = {
        "task": task,
        "seeds": list(seeds),
        "trials": int(trials),
        "preset": get_preset(preset).name,
        "feedback": {},
    }
    for feedback in feedbacks:
        curves, finals, correct = [], [], 0
        for seed in seeds:
            result = run_task(task, feedback=feedback, trials=trials, seed=seed, progress=progress, preset=preset)
            curves.append(result.losses)
            finals.append(float(np.mean(result.losses[-max(1, trials // 10) :])))
            correct += int(result.extra.get("xor_correct", 0))
        out["feedback"][feedback] = {
            "losses": curves,
            "final_losses": finals,
            "mean_final_loss": float(np.mean(finals)),
            "correct": correct,
            "out_of": 4 * len(seeds),
        }
    return out
