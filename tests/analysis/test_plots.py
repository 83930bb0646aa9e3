"""Figures: axes fitted to the data, legends that hide nothing, labels that say what is plotted, colour bars."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.analysis.plots_predictivity import plot_scores
from neuromodels.analysis.plots_retina import plot_cc_vs_ceiling, plot_filters
from neuromodels.analysis.predictivity import predictivity


def test_cc_vs_ceiling_fits_the_x_axis_to_the_ceilings_and_keeps_the_diagonal():
    rng = np.random.default_rng(0)
    ceilings = np.linspace(0.92, 0.96, 12)  # sample:retina's range (docs/retina.md)
    cnn = xr.Dataset({"cc_max": ("cell", ceilings), "cc": ("cell", rng.uniform(0.75, 0.83, 12))})
    ln = xr.Dataset({"cc_max": ("cell", ceilings), "cc": ("cell", rng.uniform(-0.1, 0.68, 12))})
    ax = plot_cc_vs_ceiling({"CNN": cnn, "LN": ln}).axes[0]
    x_lo, x_hi = ax.get_xlim()
    assert x_lo < 0.92 and x_hi > 0.96  # every point inside, with a margin
    assert (0.96 - 0.92) / (x_hi - x_lo) > 0.5  # the points spread over most of the axis (0-1: 4% of it)
    y_lo, y_hi = ax.get_ylim()
    assert y_lo < -0.1 and y_hi > 0.96  # every CC and the diagonal over the x range
    diagonal = [line for line in ax.get_lines() if "at ceiling" in line.get_label()]
    assert len(diagonal) == 1
    np.testing.assert_allclose(diagonal[0].get_xdata(), diagonal[0].get_ydata())
    np.testing.assert_allclose(diagonal[0].get_xdata(), [x_lo, x_hi])


@pytest.fixture(scope="module")
def score_result() -> xr.Dataset:
    """A real predictivity result (its attrs name the score) on 60 stimuli, 3 neuroids."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 4))
    responses = x[:, :3] + 0.5 * rng.standard_normal((2, 60, 3))  # 2 repetitions
    ids = [f"s{i:02d}" for i in range(60)]
    neural = xr.DataArray(
        responses.reshape(120, 3),
        dims=("presentation", "neuroid"),
        coords={
            "stimulus_id": ("presentation", ids * 2),
            "repetition": ("presentation", [0] * 60 + [1] * 60),
            "neuroid_id": ("neuroid", ["n0", "n1", "n2"]),
        },
    )
    features = xr.DataArray(x, dims=("presentation", "feature"), coords={"stimulus_id": ("presentation", ids)})
    return predictivity(features, neural, regression="linear", n_splits=2, stratify_coord=None, ceiling=0.9)


def _by_layer_and_region(result: xr.Dataset) -> xr.Dataset:
    """Three layers x two regions of equal high scores: no room above the bars, a legend inside covers one."""
    layers, regions = ["conv1", "conv2", "fc"], ["V4", "IT"]
    score = xr.DataArray(
        [[0.90, 0.91], [0.91, 0.90], [0.90, 0.91]],
        dims=("layer", "region"),
        coords={"layer": layers, "region": regions},
    )
    return xr.Dataset({"score": score, "error": score * 0 + 0.02, "ceiled_score": score**2 / 0.9}, attrs=result.attrs)


def test_score_bars_keep_the_legend_off_every_bar_and_name_the_score(score_result):
    fig = plot_scores(_by_layer_and_region(score_result))
    fig.draw_without_rendering()  # lays the figure out (constrained layout) and places the legend
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    bars = [patch for patch in ax.patches if patch.get_height() > 0]
    assert len(bars) == 6
    assert not any(legend.overlaps(bar.get_window_extent()) for bar in bars)
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, and inside the figure
    assert legend.x1 <= fig.bbox.x1
    assert ax.get_ylabel() == "score: median Pearson r over neuroids"
    assert score_result.attrs["aggregation"].startswith("median over neuroids")  # the label's source
    ceiled = plot_scores(_by_layer_and_region(score_result), variable="ceiled_score").axes[0]
    assert ceiled.get_ylabel() == "ceiled score (score² / ceiling)"
    assert plot_scores({"a": 0.3, "b": 0.5}).axes[0].get_ylabel() == "score"  # no attrs: nothing claimed


def test_filter_maps_have_symmetric_colour_bars():
    torch.manual_seed(0)
    filters = torch.randn(3, 10, 6, 6) * torch.tensor([0.1, 1.0, 3.0])[:, None, None, None]
    fig = plot_filters(filters)
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 3
    for image in images:
        low, high = image.get_clim()
        assert low == -high and high == pytest.approx(np.abs(image.get_array()).max())
        assert image.colorbar is not None and image.colorbar.ax in fig.axes
