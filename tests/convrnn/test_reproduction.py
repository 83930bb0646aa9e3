"""Slow: the small-scale reproduction of Nayebi et al. 2018's cell comparison (run by `make reproduce`)."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.mark.slow
def test_memory_task_cell_comparison(shared_data):
    from neuromodels.analysis.convrnn_reproduce import memory_task_comparison, write_memory_task_report

    torch.set_num_threads(1)
    result = memory_task_comparison(path=shared_data / "mnist-t10k")
    paths = write_memory_task_report(result, os.environ.get("NEUROMODELS_REPORTS", "reports"))
    table = result["table"]
    print({k: (round(v["mean"], 3), round(v["sem"], 3), v["parameters"]) for k, v in table.items()}, paths)
    params = [v["parameters"] for v in table.values()]
    assert max(params) / min(params) < 1.05  # matched parameter counts
    # the feedforward net only sees gray at readout: chance by construction
    assert table["feedforward"]["mean"] < 0.2
    every = {k: v["mean"] for k, v in table.items()}
    # every cell with memory solves the task far above chance
    assert min(every[k] for k in ("vanilla", "lstm", "time_decay", "rgc", "rgc_median")) > 0.4, every
    # the paper's claims that hold here (docs/convrnn.md): vanilla RNN and LSTM are no better than the
    # feedforward net that still sees the image, and the RGC (neutral and the authors' median cell with its
    # bypass) beats the LSTM at equal parameters.
    assert every["vanilla"] <= every["feedforward@image"] + 0.01, every
    assert every["lstm"] < every["feedforward@image"], every
    assert every["rgc"] > every["lstm"] + 0.1, every
    assert every["rgc_median"] > every["lstm"] + 0.1, every
    # the claim that does not hold at this scale (reported, not asserted): the RGC is not the best cell;
    # time decay and vanilla RNN (with ~2-3x the channels at the same parameter count) match or beat it.
