"""Convolutional recurrent networks of the ventral stream (Nayebi et al. 2018, arXiv:1807.00053).

* :mod:`~neuromodels.convrnn.cells`: local recurrent cells with explicit state (time decay, vanilla RNN, LSTM,
  GRU, UGRNN, IntersectionRNN, Reciprocal Gated Cell);
* :mod:`~neuromodels.convrnn.model`: :class:`ConvRNN`, conv layers + cells + long-range feedback unrolled in time.

Training on image classification: :mod:`neuromodels.fitting.classification` (and the architecture search,
:mod:`neuromodels.fitting.search`); per-time-step features and time-resolved neural predictivity:
:mod:`neuromodels.analysis.temporal_predictivity`; the reproductions: :mod:`neuromodels.analysis.convrnn_reproduce`.

See docs/convrnn.md.
"""

from __future__ import annotations

from neuromodels.convrnn.cells import CELLS, ReciprocalGatedCell, make_cell
from neuromodels.convrnn.model import ConvRNN, ConvRNNOutput, LayerSpec, count_parameters

__all__ = ["CELLS", "ConvRNN", "ConvRNNOutput", "LayerSpec", "ReciprocalGatedCell", "count_parameters", "make_cell"]
