"""A torch Dataset over a continuous recording: stimulus history windows and the response they drive.

The movie is held once, as a ``(time, y, x)`` float32 tensor; windows of the last ``history`` frames are
a strided view of it (:func:`neuromodels._history.history_view`), so memory does not grow with history
length. A batch gathers only its own windows (``batch_size x history`` frames) into new memory.

Sample ``i`` is a target bin ``t = ends[i]`` (a bin with ``history`` contiguous frames ending at it, and,
for the GLM, ``spike_history`` past bins in the same segment): inputs are the window ``t - history + 1 ..
t`` and, if ``spike_history > 0``, the recorded counts of bins ``t - spike_history .. t - 1``; the target is
``response[t]`` ``(cell,)``. With ``sequence_length=S`` a sample is ``S`` consecutive bins (for the
recurrent CNN): inputs ``(S, history, y, x)``, target ``(S, cell)``.

The training loop calls :meth:`RetinaDataset.batch` with a batch of sample indices (one gather per batch,
no per-item collate); ``__getitem__`` serves the same samples one at a time for a standard DataLoader.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from neuromodels._history import history_view, segment_bounds
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["RetinaDataset", "from_recording", "train_valid_split"]


def _pad_segments(values: torch.Tensor, segments: list[tuple[int, int]], lead: int) -> torch.Tensor:
    """``lead`` zero rows before every segment ``[start, stop)`` of ``values`` (along the first axis)."""
    zeros = values.new_zeros((lead, *values.shape[1:]))
    parts: list[torch.Tensor] = []
    for start, stop in segments:
        parts += [zeros, values[start:stop]]
    return torch.cat(parts)


def _as_tensor(values: Any, name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(torch.float32).contiguous()
    array = np.ascontiguousarray(np.asarray(values), dtype=np.float32)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory; copying once is harmless
        array = array.copy()
    return torch.from_numpy(array)


class RetinaDataset(torch.utils.data.Dataset):
    """Stimulus-history windows and responses of one recording segment set (see the module docstring).

    ``stimulus``: ``(time, y, x)`` (NumPy or torch; float32 arrays are shared, not copied). ``response``:
    ``(time, cell)`` counts per bin (or ``None`` for prediction only). ``time``: bin start times (s); gaps
    between blocks split the data into segments that no window crosses. ``stimulus_mean`` /
    ``stimulus_std``: batches are returned as ``(window - mean) / std`` (normalised per batch, so the stored
    movie is never copied). ``pad=True``: every bin is a target, the history before a segment's first frame
    being gray (zero contrast) frames and silent bins (one padded copy of the movie is made); this is how
    recordings that start from a gray screen (``sample:retina``) are predicted from their first bin. With
    ``pad=False`` (default, training) the first ``max(history - 1, spike_history)`` bins of each segment are
    not targets and the movie is not copied at all. ``ends``: restrict to these target bins (see
    :func:`train_valid_split`).
    """

    def __init__(
        self,
        stimulus: Any,
        response: Any | None = None,
        *,
        history: int = 40,
        time: Sequence[float] | np.ndarray | None = None,
        spike_history: int = 0,
        sequence_length: int | None = None,
        stimulus_mean: float = 0.0,
        stimulus_std: float = 1.0,
        pad: bool = False,
        ends: np.ndarray | None = None,
    ) -> None:
        self.stimulus = _as_tensor(stimulus, "stimulus")
        if self.stimulus.dim() != 3:
            raise DataFormatError(
                field="stimulus", expected="(time, y, x)", found=f"shape {tuple(self.stimulus.shape)}"
            )
        n_time = self.stimulus.shape[0]
        self.response = None if response is None else _as_tensor(response, "response")
        if self.response is not None and (self.response.dim() != 2 or self.response.shape[0] != n_time):
            raise DataFormatError(
                field="response", expected=f"(time={n_time}, cell)", found=f"shape {tuple(self.response.shape)}"
            )
        if spike_history and self.response is None:
            raise ConfigError("spike_history > 0 needs the recorded response")
        if stimulus_std <= 0 or not np.isfinite(stimulus_std):
            raise ConfigError(f"stimulus_std must be a positive number, got {stimulus_std}")
        self.history = int(history)
        self.spike_history = int(spike_history)
        self.sequence_length = None if sequence_length is None else int(sequence_length)
        self.stimulus_mean = float(stimulus_mean)
        self.stimulus_std = float(stimulus_std)
        self.pad = bool(pad)
        self.time = np.arange(n_time, dtype=np.float64) if time is None else np.asarray(time, dtype=np.float64)
        if self.time.shape != (n_time,):
            raise DataFormatError(field="time", expected=f"{n_time} bin times", found=f"shape {self.time.shape}")
        segments = segment_bounds(self.time)
        lead = max(self.history - 1, self.spike_history)
        if self.pad:
            # gray (zero) frames and silent bins before every segment: one copy of the movie, never 40.
            self._stimulus_store = _pad_segments(self.stimulus, segments, lead)
            self._response_store = None if self.response is None else _pad_segments(self.response, segments, lead)
            position = np.concatenate(
                [np.arange(start, stop) + (k + 1) * lead for k, (start, stop) in enumerate(segments)]
            )
            valid = np.ones(n_time, dtype=bool)
        else:
            self._stimulus_store, self._response_store = self.stimulus, self.response
            position = np.arange(n_time)
            first = np.concatenate([np.full(stop - start, start) for start, stop in segments])
            valid = np.arange(n_time) - first >= lead
        self._segment = np.concatenate([np.full(stop - start, k) for k, (start, stop) in enumerate(segments)])
        if self._stimulus_store.shape[0] < self.history:
            raise DataFormatError(
                field="stimulus", expected=f"at least history={self.history} frames", found=f"{n_time} frames"
            )
        self._position = torch.from_numpy(position.astype(np.int64))  # bin -> row in the (padded) store
        # (n_windows, history, y, x) view: window w holds store rows w .. w + history - 1
        self.windows = history_view(self._stimulus_store, self.history)
        all_ends = np.flatnonzero(valid).astype(np.int64)
        self.ends = all_ends if ends is None else np.asarray(ends, dtype=np.int64)
        if not np.isin(self.ends, all_ends).all():
            raise ConfigError("ends must be bins with a complete history inside one segment")
        if self.sequence_length is not None:
            self.starts = self._sequence_starts(self.ends, self._segment, self.sequence_length)
        if len(self) == 0:
            raise DataFormatError(
                field="time", expected=f"segments longer than {lead} bins (or pad=True)", found="no complete history"
            )

    @staticmethod
    def _sequence_starts(ends: np.ndarray, segment: np.ndarray, length: int) -> np.ndarray:
        # non-overlapping runs of `length` consecutive valid bins within one segment
        starts = []
        i = 0
        while i + length <= len(ends):
            first, last = ends[i], ends[i + length - 1]
            if last - first == length - 1 and segment[first] == segment[last]:
                starts.append(i)
                i += length
            else:
                i += 1
        return np.asarray(starts, dtype=np.int64)

    # ------------------------------------------------------------------------------------------------ access
    @property
    def n_cells(self) -> int:
        return 0 if self.response is None else int(self.response.shape[1])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (int(self.stimulus.shape[1]), int(self.stimulus.shape[2]))

    def __len__(self) -> int:
        return len(self.starts) if self.sequence_length is not None else len(self.ends)

    def _target_bins(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.int64)
        if self.sequence_length is None:
            return torch.from_numpy(self.ends)[index]
        first = torch.from_numpy(self.ends[self.starts])[index]
        return first[:, None] + torch.arange(self.sequence_length)  # (batch, seq)

    def batch(self, index: Any) -> tuple[Any, torch.Tensor | None]:
        """Inputs and targets of the samples ``index`` (a 1-D integer tensor/array), gathered at once.

        Returns ``(inputs, target)``; ``inputs`` is the window tensor ``(batch[, seq], history, y, x)``, or the
        tuple ``(windows, past_spikes (batch, spike_history, cell))`` when ``spike_history > 0``; ``target``
        is ``(batch[, seq], cell)`` (``None`` without a response).
        """
        bins = self._target_bins(torch.as_tensor(np.asarray(index), dtype=torch.int64))
        rows = self._position[bins]
        windows = self.windows[rows - (self.history - 1)]
        if self.stimulus_mean != 0.0 or self.stimulus_std != 1.0:
            windows = (windows - self.stimulus_mean) / self.stimulus_std
        target = None if self.response is None else self.response[bins]
        if self.spike_history:
            lags = torch.arange(-self.spike_history, 0)
            past = self._response_store[rows[..., None] + lags]  # (batch, spike_history, cell)
            return (windows, past), target
        return windows, target

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        inputs, target = self.batch(np.asarray([i]))
        if isinstance(inputs, tuple):
            inputs = tuple(part[0] for part in inputs)
        else:
            inputs = inputs[0]
        return inputs, (None if target is None else target[0])

    def target_bins(self) -> np.ndarray:
        """Bin index of every target, ``(n_samples,)`` (``(n_samples, seq)`` for sequences)."""
        return self._target_bins(torch.arange(len(self))).numpy()

    def subset(self, ends: np.ndarray) -> RetinaDataset:
        """The same data (shared storage, padded or not) restricted to the target bins ``ends``."""
        ends = np.asarray(ends, dtype=np.int64)
        if not np.isin(ends, self.ends).all():
            raise ConfigError("a subset's target bins must be targets of the dataset")
        part = copy.copy(self)
        part.ends = ends
        if self.sequence_length is not None:
            part.starts = self._sequence_starts(ends, self._segment, self.sequence_length)
        return part


def from_recording(
    recording: xr.Dataset,
    split: str | None = "train",
    *,
    history: int = 40,
    spike_history: int = 0,
    sequence_length: int | None = None,
    stimulus_mean: float = 0.0,
    stimulus_std: float = 1.0,
    pad: bool = False,
    cells: Sequence[str] | None = None,
) -> RetinaDataset:
    """A :class:`RetinaDataset` over the ``split`` (``"train"``, ``"test"`` or ``None`` for all) of a recording.

    The recording is the data model's continuous recording (``stimulus(time, y, x)``, ``response(time,
    cell)``); ``cells`` selects and orders cells by id. Other arguments as in :class:`RetinaDataset`.
    """
    from neuromodels.datasets.recording import split as split_recording

    source = recording.attrs.get("source")
    if "stimulus" not in recording:
        raise DataFormatError(file=source, field="stimulus", expected="a stimulus(time, y, x) variable", found="none")
    part = recording if split is None else split_recording(recording, split)
    if part.sizes["time"] == 0:
        raise DataFormatError(file=source, field="split", expected=f"bins in the '{split}' split", found="none")
    response = part["response"]
    if cells is not None:
        missing = sorted(set(map(str, cells)) - set(map(str, part["cell"].values)))
        if missing:
            raise DataFormatError(
                file=source, field="cell", expected="the model's cells", found=f"missing {missing[:5]}"
            )
        response = response.sel(cell=list(cells))
    return RetinaDataset(
        part["stimulus"].transpose("time", "y", "x").values,
        response.transpose("time", "cell").values,
        history=history,
        time=part["time"].values,
        spike_history=spike_history,
        sequence_length=sequence_length,
        stimulus_mean=stimulus_mean,
        stimulus_std=stimulus_std,
        pad=pad,
    )


def train_valid_split(
    dataset: RetinaDataset, valid_fraction: float = 0.1, *, block_bins: int = 200
) -> tuple[RetinaDataset, RetinaDataset]:
    """Hold out contiguous blocks of ``block_bins`` target bins, evenly spread in time, for validation.

    Blocks (2 s at 100 Hz by default) rather than random bins, because neighbouring targets share 39 of
    40 frames and correlated responses: random held-out bins would sit between training bins and early
    stopping would not see overfitting. Training targets within ``history`` bins of a validation block are
    dropped for the same reason. ``round(valid_fraction * n / block_bins)`` blocks of equal length (together
    ``valid_fraction`` of the targets) are spread evenly over the recording rather than taken from its end,
    so that validation sees every stimulus ensemble (``sample:retina`` ends its training split with the
    natural movie).
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if block_bins < 1:
        raise ConfigError(f"block_bins must be >= 1, got {block_bins}")
    ends = dataset.ends
    n_valid = max(1, int(round(valid_fraction * len(ends))))
    n_blocks = max(1, int(round(n_valid / block_bins)))
    # validation block k is centred at (k + 1/2) / n_blocks of the recording, all of equal length
    length = n_valid // n_blocks
    centres = ((np.arange(n_blocks) + 0.5) * len(ends) / n_blocks).astype(np.int64)
    is_valid = np.zeros(len(ends), dtype=bool)
    for centre in centres:
        start = int(np.clip(centre - length // 2, 0, len(ends) - length))
        is_valid[start : start + length] = True
    valid_ends = ends[is_valid]
    # distance (in bins) from each target to the nearest validation target
    position = np.searchsorted(valid_ends, ends)
    before = np.abs(ends - valid_ends[np.clip(position - 1, 0, len(valid_ends) - 1)])
    after = np.abs(valid_ends[np.clip(position, 0, len(valid_ends) - 1)] - ends)
    far = np.minimum(before, after) >= dataset.history
    train_ends = ends[~is_valid & far]
    if len(train_ends) == 0 or len(valid_ends) == 0:
        raise DataFormatError(
            field="time", expected="enough bins for a train/validation split", found=f"{len(ends)} bins"
        )
    return dataset.subset(train_ends), dataset.subset(valid_ends)
