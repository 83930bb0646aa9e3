"""Slow: the Synaptic Intelligence reproductions on reduced-scale MNIST (run by `make reproduce`; docs/continual.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch


def _out() -> Path:
    return Path(os.environ.get("NEUROMODELS_REPORTS", "reports")) / "continual"


@pytest.mark.slow
def test_split_mnist_task_incremental_si_beats_finetuning(shared_data):
    from neuromodels.analysis.continual_reproduce import reproduce_split_mnist

    torch.set_num_threads(1)
    result = reproduce_split_mnist(_out(), scenario="task", seeds=(0, 1, 2))
    print(json.dumps(result["summary"]))
    si = np.array([np.mean(m[-1]) for m in result["accuracy"]["si"]])
    finetune = np.array([np.mean(m[-1]) for m in result["accuracy"]["finetune"]])
    assert (si >= 0.95).all(), si
    # a clear margin on every seed (measured: 98.8 +- 0.05 % vs 97.8 +- 0.2 %, docs/continual.md)
    assert (si - finetune > 0.005).all(), (si, finetune)


@pytest.mark.slow
def test_split_mnist_class_incremental_si_is_near_finetuning(shared_data):
    # van de Ven & Tolias 2019: in class-incremental split MNIST, SI ~ fine-tuning (~20 %)
    from neuromodels.analysis.continual_reproduce import reproduce_split_mnist

    torch.set_num_threads(1)
    result = reproduce_split_mnist(_out(), scenario="class", seeds=(0, 1, 2))
    print(json.dumps(result["summary"]))
    si = result["summary"]["si"]["average_accuracy"]
    finetune = result["summary"]["finetune"]["average_accuracy"]
    assert si < 0.4 and finetune < 0.4  # both forget all but the last task's two classes
    assert abs(si - finetune) < 0.1


@pytest.mark.slow
def test_permuted_mnist_ordering_of_c(shared_data):
    from neuromodels.analysis.continual_reproduce import reproduce_permuted_mnist

    torch.set_num_threads(1)  # the thread count of the runs in docs/continual.md (same arithmetic, same numbers)
    result = reproduce_permuted_mnist(_out(), seeds=(0, 1, 2))  # 4-10 minutes per seed on one shared core
    print(json.dumps(result["table"]))
    ours = {float(c): row["ours"] for c, row in result["table"].items()}  # the mean over the three seeds
    # the paper's ordering c = 0.1 > 0.02 > 0.01 > 0 (96.9 / 93.9 / 92.0 / 57.4 % on full MNIST), on the seed
    # mean (measured 70.5 > 65.7 > 63.5 > 58.1 %); it held on each seed too, the 0.02 / 0.01 pair by 0.5-4.3 points
    assert ours[0.1] > ours[0.02] > ours[0.01] > ours[0.0], ours


@pytest.mark.slow
def test_split_mnist_baselines_and_peer_conventions(shared_data):
    # docs/continual.md, "Other methods and the peers' conventions": no figures (they would replace SI's)
    from neuromodels.analysis.continual_reproduce import reproduce_split_mnist

    torch.set_num_threads(1)
    baselines = reproduce_split_mnist(None, methods=("ewc", "online-ewc", "joint"))["summary"]
    avalanche = reproduce_split_mnist(None, methods=("si",), xi=1e-7, si_options={"preset": "avalanche"})["summary"]
    van_de_ven = reproduce_split_mnist(None, methods=("si",), xi=0.1, si_options={"preset": "van-de-ven"})["summary"]
    print(json.dumps({"baselines": baselines, "avalanche": avalanche, "van-de-ven": van_de_ven}))
    assert baselines["joint"]["average_accuracy"] > 0.99  # measured 99.45 %
    assert baselines["ewc"]["average_accuracy"] > 0.975 and baselines["online-ewc"]["average_accuracy"] > 0.975
    # the peers' conventions at the paper's strength stay below the authors' rule (98.8 % on every seed)
    assert avalanche["si"]["average_accuracy"] < 0.985  # measured 97.96 %
    assert van_de_ven["si"]["average_accuracy"] < 0.987  # measured 98.11 %
