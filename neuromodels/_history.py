"""Stimulus history as a strided view: the last ``history`` frames before each time bin, without copying.

A retina model sees, at time bin ``t``, the frames ``t - history + 1, ..., t`` (the current frame included:
the response in bin ``t`` is counted during frame ``t``). Materialising those windows for a whole movie
would take ``history`` times the movie's memory (40x for the McIntosh et al. 2016 models: 12 GB for a
one-hour 50x50 movie at 100 Hz). Instead :func:`history_view` returns a view whose strides step one frame
along the window axis, so every window shares the movie's storage; only the batches a model actually
consumes are gathered into new memory.

deep-retina (``rolling_window`` then ``resp[history:]``) pairs the window ``t - history, ..., t - 1`` with
bin ``t``, i.e. it excludes the current frame; we include it because a bin's spikes follow its frame within
the 10 ms bin, and the first ``history - 1`` bins of a segment have no prediction (NaN) instead of
``history``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["history_view", "history_view_numpy", "segment_bounds", "valid_window_ends"]


def history_view(stimulus: Any, history: int) -> Any:
    """Windows of the last ``history`` frames, as a view of ``stimulus`` (a torch tensor).

    ``stimulus``: ``(time, *frame)`` tensor, e.g. ``(time, y, x)``. Returns ``(time - history + 1, history,
    *frame)``: element ``[i, k]`` is frame ``i + k``, so window ``i`` ends at (and includes) frame
    ``i + history - 1``. The result shares storage with ``stimulus`` (``Tensor.unfold``; no copy).
    """
    import torch

    if not isinstance(stimulus, torch.Tensor):
        raise TypeError(f"history_view needs a torch.Tensor, got {type(stimulus).__name__}")
    if history < 1:
        raise ValueError(f"history must be >= 1 frame, got {history}")
    if stimulus.shape[0] < history:
        raise ValueError(f"a stimulus of {stimulus.shape[0]} frames has no complete {history}-frame window")
    # unfold puts the window axis last: (n_windows, *frame, history); move it to position 1 (a view as well).
    windows = stimulus.unfold(0, history, 1)
    return windows.movedim(-1, 1)


def history_view_numpy(stimulus: np.ndarray, history: int) -> np.ndarray:
    """The NumPy twin of :func:`history_view`: a read-only ``(time - history + 1, history, *frame)`` view."""
    stimulus = np.asarray(stimulus)
    if history < 1:
        raise ValueError(f"history must be >= 1 frame, got {history}")
    if stimulus.shape[0] < history:
        raise ValueError(f"a stimulus of {stimulus.shape[0]} frames has no complete {history}-frame window")
    windows = np.lib.stride_tricks.sliding_window_view(stimulus, history, axis=0)
    return np.moveaxis(windows, -1, 1)


def segment_bounds(time: np.ndarray, *, tolerance: float = 0.5) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` index ranges of the contiguous segments of bin times ``time`` (s).

    A step larger than ``(1 + tolerance)`` times the median bin step (e.g. between the blocks of an
    interleaved recording) starts a new segment; no history window may span two segments.
    """
    time = np.asarray(time, dtype=np.float64)
    n = time.size
    if n < 2:
        return [(0, n)] if n else []
    steps = np.diff(time)
    dt = float(np.median(steps))
    breaks = (np.flatnonzero(steps > (1.0 + tolerance) * dt) + 1).tolist()
    edges = [0, *breaks, n]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def valid_window_ends(time: np.ndarray, history: int, *, tolerance: float = 0.5) -> np.ndarray:
    """Indices of the bins that have ``history`` contiguous frames (same segment) ending at them."""
    ends = [np.arange(start + history - 1, stop) for start, stop in segment_bounds(time, tolerance=tolerance)]
    return np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, dtype=np.int64)
