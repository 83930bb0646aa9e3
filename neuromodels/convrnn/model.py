"""``ConvRNN``: a stack of conv layers with local recurrent cells and long-range feedback, unrolled in time.

Nayebi et al. 2018 (arXiv:1807.00053), section 3.1 and S1: every layer is "conv -> cell -> pool"; layers are
nodes of a graph whose edges (feedforward l-1 -> l, and feedback s -> l with s >= l) each take one time step.

Unrolling (discrete time ``t = 0 .. steps-1``)
----------------------------------------------
* input of layer 0 at step ``t``: the image for ``t < image_steps``, afterwards a uniform "mean gray" image of
  value ``gray_value`` (0.0: the images are expected standardised, so 0 is their mean);
* input of layer ``l > 0`` at step ``t``: the output of layer ``l - 1`` at step ``t - 1``;
* feedback edges into layer ``l``: the outputs at step ``t - 1`` of their source layers, each resized to the
  spatial shape of layer ``l``'s input (bilinear interpolation, ``align_corners=False``), concatenated on
  channels and passed through a 1 x 1 convolution (no bias) to the channels of that input, then added to it;
* layer ``l`` first runs at ``t = l`` (when its first input arrives); before that its output is exactly zero
  and its state stays the zero initial state;
* layer ``l`` at step ``t``: ``x = conv_l(input)`` (stride 1, "same" padding), ``h, state = cell_l(x, state
  [, bypass=input])``, ``output = maxpool_l(h)``;
* the readout is a linear classifier on the spatially averaged output of the top layer at step
  ``readout_step`` (default: the last step). ``forward(images)`` returns those logits; :meth:`ConvRNN.run`
  returns every layer's output and the logits at every step (neural dynamics).

Deviation: the paper concatenates the feedforward input with the resized feedback and passes the result
through the layer's convolution ("harbor"). Here the feedback goes through its own 1 x 1 convolution and is
added to the feedforward input, which is the same map as a 1 x 1 convolution of the concatenation whose
feedforward block is the identity. It keeps the feedforward path bit-identical to the CNN, so that a model
whose feedback weights are zero, or whose recurrence is switched off, is exactly that CNN.

``recurrence=False`` (attribute, also a constructor argument) replaces every cell by ``f(x)`` and drops the
feedback: at ``t >= depth - 1`` with the image still shown the top layer then equals :meth:`ConvRNN.feedforward_cnn`.

``checkpoint_steps=True`` recomputes every time step in the backward pass (``torch.utils.checkpoint``,
non-reentrant), trading about one extra forward pass for keeping only the per-step layer outputs and
states instead of every intermediate of every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuromodels._parameters import count_parameters
from neuromodels.convrnn.cells import CELLS, ConvCell, activation_function, make_cell
from neuromodels.errors import ConfigError

__all__ = ["LayerSpec", "ConvRNNLayer", "ConvRNN", "ConvRNNOutput", "count_parameters"]


@dataclass
class LayerSpec:
    """One layer: ``channels`` output channels of a ``kernel_size`` convolution, ``cell`` (a key of ``CELLS``,
    ``None``: the model's default), ``cell_options`` (passed to the cell), ``pool`` (max-pool size and stride
    after the cell, 1 = none), ``bypass`` (RGC only: the layer input enters the cell as ``r``)."""

    channels: int
    kernel_size: int = 3
    pool: int = 1
    cell: str | None = None
    cell_options: dict[str, Any] = field(default_factory=dict)
    bypass: bool = False


class ConvRNNLayer(nn.Module):
    """conv -> cell -> pool. ``forward(inputs, state) -> (output, new_state)``.

    ``inputs``: ``(batch, in_channels, H, W)`` (feedback already added); output ``(batch, channels, H//pool,
    W//pool)``. ``recurrent=False`` bypasses the cell: ``output = pool(f(conv(inputs)))`` and the state is
    returned unchanged.
    """

    def __init__(self, in_channels: int, spec: LayerSpec, cell: ConvCell, activation: str) -> None:
        super().__init__()
        if spec.kernel_size < 1 or spec.kernel_size % 2 == 0:
            raise ConfigError(f"layer kernel_size must be a positive odd integer, got {spec.kernel_size}")
        if spec.pool < 1:
            raise ConfigError(f"layer pool must be >= 1, got {spec.pool}")
        self.conv = nn.Conv2d(in_channels, spec.channels, spec.kernel_size, padding=spec.kernel_size // 2)
        self.cell = cell
        self.pool = nn.MaxPool2d(spec.pool) if spec.pool > 1 else nn.Identity()
        self.bypass = bool(spec.bypass)
        self.activation = activation_function(activation)
        self.in_channels, self.channels, self.pool_size = int(in_channels), int(spec.channels), int(spec.pool)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, ...], recurrent: bool = True
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        x = self.conv(inputs)
        if not recurrent:
            return self.pool(self.activation(x)), state
        h, new_state = self.cell(x, state, bypass=inputs if self.bypass else None)
        return self.pool(h), new_state


@dataclass
class ConvRNNOutput:
    """What :meth:`ConvRNN.run` returns.

    ``layers``: per layer, a tensor ``(batch, steps, channels, y, x)`` of its outputs at every step (zeros before
    ``t = l``); ``logits``: ``(batch, steps, classes)`` readout at every step (``None`` when not asked for).
    """

    layers: list[torch.Tensor]
    logits: torch.Tensor | None


class ConvRNN(nn.Module):
    """Convolutional recurrent network unrolled in time (module doc for the exact schedule).

    Parameters
    ----------
    layers: a list of :class:`LayerSpec` (or dicts with its fields), bottom to top.
    in_channels: image channels (1 for MNIST).
    cell: default cell type of every layer (``feedforward``, ``time_decay``, ``vanilla``, ``lstm``, ``gru``,
        ``ugrnn``, ``intersection``, ``rgc``); ``cell_options``: default options of every cell.
    feedback: long-range feedback edges ``(source, target)`` with ``source >= target`` (layer indices).
    steps: time steps unrolled; ``image_steps``: steps the image is shown (then ``gray_value``).
    readout_step: step whose top-layer output is classified by ``forward`` (default ``steps - 1``).
    num_classes: outputs of the linear readout (0: no readout; ``forward`` then returns the top layer).
    activation: ``f`` of the layers (feedforward path and recurrence off).
    recurrence: ``False`` switches every cell and the feedback off (the feedforward CNN).
    checkpoint_steps: gradient checkpointing over time steps.

    Shapes: ``forward(images (batch, in_channels, H, W)) -> logits (batch, num_classes)``.
    """

    def __init__(
        self,
        layers: Sequence[LayerSpec | dict[str, Any]],
        *,
        in_channels: int = 1,
        cell: str = "rgc",
        cell_options: dict[str, Any] | None = None,
        feedback: Sequence[Sequence[int]] = (),
        steps: int = 8,
        image_steps: int | None = None,
        readout_step: int | None = None,
        num_classes: int = 10,
        activation: str = "elu",
        gray_value: float = 0.0,
        recurrence: bool = True,
        checkpoint_steps: bool = False,
    ) -> None:
        super().__init__()
        specs = [s if isinstance(s, LayerSpec) else LayerSpec(**s) for s in layers]
        if not specs:
            raise ConfigError("a ConvRNN needs at least one layer")
        if cell not in CELLS:
            raise ConfigError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.steps = int(steps)
        self.image_steps = self.steps if image_steps is None else int(image_steps)
        self.readout_step = self.steps - 1 if readout_step is None else int(readout_step)
        if self.steps < 1 or not 0 <= self.image_steps <= self.steps:
            raise ConfigError(f"need steps >= 1 and 0 <= image_steps <= steps, got {steps} and {image_steps}")
        if not -self.steps <= self.readout_step < self.steps:
            raise ConfigError(f"readout_step {readout_step} out of range for {self.steps} steps")
        self.readout_step %= self.steps
        self.gray_value = float(gray_value)
        self.recurrence = bool(recurrence)
        self.checkpoint_steps = bool(checkpoint_steps)
        self.specs = specs
        self.config = {
            "layers": [asdict(s) for s in specs],
            "in_channels": int(in_channels),
            "cell": cell,
            "cell_options": dict(cell_options or {}),
            "feedback": [list(map(int, e)) for e in feedback],
            "steps": self.steps,
            "image_steps": self.image_steps,
            "readout_step": self.readout_step,
            "num_classes": int(num_classes),
            "activation": activation,
            "gray_value": self.gray_value,
        }

        self.layers = nn.ModuleList()
        channels_in = [int(in_channels)]
        for spec in specs:
            options = dict(cell_options or {})
            options.update(spec.cell_options)
            cell_name = spec.cell or cell
            if spec.bypass:
                if cell_name != "rgc":
                    raise ConfigError(f"bypass is only defined for the 'rgc' cell, layer cell is {cell_name!r}")
                options["bypass_channels"] = channels_in[-1]
            self.layers.append(
                ConvRNNLayer(channels_in[-1], spec, make_cell(cell_name, spec.channels, **options), activation)
            )
            channels_in.append(spec.channels)

        self.feedback_edges: list[tuple[int, int]] = []
        for edge in feedback:
            if len(edge) != 2:
                raise ConfigError(f"a feedback edge is (source, target), got {edge!r}")
            source, target = int(edge[0]), int(edge[1])
            if not (0 <= target <= source < len(specs)):
                raise ConfigError(f"feedback edge {edge!r}: need 0 <= target <= source < {len(specs)} (layers)")
            if (source, target) in self.feedback_edges:
                raise ConfigError(f"feedback edge {edge!r} given twice")
            self.feedback_edges.append((source, target))
        self.feedback_sources: dict[int, list[int]] = {}
        for source, target in sorted(self.feedback_edges):
            self.feedback_sources.setdefault(target, []).append(source)
        self.feedback = nn.ModuleDict(
            {
                str(target): nn.Conv2d(sum(specs[s].channels for s in sources), channels_in[target], 1, bias=False)
                for target, sources in self.feedback_sources.items()
            }
        )
        self.readout = nn.Linear(specs[-1].channels, int(num_classes)) if num_classes else None

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> ConvRNN:
        """A new model (fresh weights) from :attr:`config` (JSON-ready: saved with results and checkpoints)."""
        return cls(**{**config, **overrides})

    # ------------------------------------------------------------------------------------------------ shapes
    @property
    def depth(self) -> int:
        return len(self.layers)

    def layer_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """``(channels, y, x)`` of every layer's output for ``height x width`` images."""
        shapes = []
        for layer in self.layers:
            height, width = height // layer.pool_size, width // layer.pool_size
            if height < 1 or width < 1:
                raise ConfigError("the images are too small for the layers' pooling")
            shapes.append((layer.channels, height, width))
        return shapes

    # --------------------------------------------------------------------------------------------- unrolling
    def _step(
        self, stimulus: torch.Tensor, previous: list[torch.Tensor], states: list[tuple[torch.Tensor, ...]], t: int
    ) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, ...]]]:
        outputs, new_states = [], []
        for index, layer in enumerate(self.layers):
            if t < index:
                outputs.append(previous[index])  # still the zeros it started with
                new_states.append(states[index])
                continue
            inputs = stimulus if index == 0 else previous[index - 1]
            sources = self.feedback_sources.get(index) if self.recurrence else None
            if sources and t > min(sources):
                size = inputs.shape[-2:]
                resized = [
                    previous[s]
                    if previous[s].shape[-2:] == size
                    else F.interpolate(previous[s], size=size, mode="bilinear", align_corners=False)
                    for s in sources
                ]
                inputs = inputs + self.feedback[str(index)](torch.cat(resized, dim=1))
            output, state = layer(inputs, states[index], recurrent=self.recurrence)
            outputs.append(output)
            new_states.append(state)
        return outputs, new_states

    def run(self, images: torch.Tensor, *, steps: int | None = None, logits: bool = True) -> ConvRNNOutput:
        """Unroll for ``steps`` (default ``self.steps``) and return every layer's output at every step.

        ``images``: ``(batch, in_channels, H, W)``. Returns :class:`ConvRNNOutput`.
        """
        per_step, per_step_logits = [], []
        for _, outputs in self._unroll(images, steps):
            per_step.append(outputs)
            if logits and self.readout is not None:
                per_step_logits.append(self._classify(outputs[-1]))
        layers = [torch.stack([o[i] for o in per_step], dim=1) for i in range(self.depth)]
        return ConvRNNOutput(layers=layers, logits=torch.stack(per_step_logits, dim=1) if per_step_logits else None)

    def _unroll(self, images: torch.Tensor, steps: int | None = None):
        if images.dim() != 4 or images.shape[1] != self.config["in_channels"]:
            raise ConfigError(f"images must be (batch, {self.config['in_channels']}, y, x), got {tuple(images.shape)}")
        steps = self.steps if steps is None else int(steps)
        batch = images.shape[0]
        shapes = self.layer_shapes(*images.shape[-2:])
        kw = {"dtype": images.dtype, "device": images.device}
        previous = [images.new_zeros(batch, *shape) for shape in shapes]
        states = []
        height, width = images.shape[-2:]
        for layer in self.layers:
            states.append(layer.cell.initial_state(batch, height, width, **kw))
            height, width = height // layer.pool_size, width // layer.pool_size
        gray = torch.full_like(images, self.gray_value)
        use_checkpoint = self.checkpoint_steps and torch.is_grad_enabled()
        for t in range(steps):
            stimulus = images if t < self.image_steps else gray
            if use_checkpoint:
                from torch.utils.checkpoint import checkpoint

                previous, states = checkpoint(self._step, stimulus, previous, states, t, use_reentrant=False)
            else:
                previous, states = self._step(stimulus, previous, states, t)
            yield t, previous

    def _classify(self, top: torch.Tensor) -> torch.Tensor:
        return self.readout(top.mean(dim=(-2, -1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` of the top layer at ``readout_step`` (the top layer itself without
        a readout). Only the steps up to the readout step are computed."""
        top = None
        for _, outputs in self._unroll(images, self.readout_step + 1):
            top = outputs[-1]
        return top if self.readout is None else self._classify(top)

    # ------------------------------------------------------------------------------------------- feedforward
    def feedforward_cnn(self) -> nn.Sequential:
        """The equal-depth feedforward CNN ``conv -> f -> pool`` per layer (+ spatial mean and the readout),
        sharing this model's convolution and readout weights (same tensors, not copies)."""
        modules: list[nn.Module] = []
        act = self.config["activation"]
        for layer in self.layers:
            modules += [layer.conv, _Activation(act), layer.pool]
        if self.readout is not None:
            modules += [_SpatialMean(), self.readout]
        return nn.Sequential(*modules)


class _Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.function = activation_function(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


class _SpatialMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))
