"""Slow reproductions: Jacobian spectra vs depth (Pennington et al. 2017, Fig. 2 analog) and trajectory length
growth vs depth (Raghu et al. 2017, Fig. 1/2 analog). Figures and numbers go to $NEUROMODELS_REPORTS (default
``reports``) and the figures also to docs/figures/."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neuromodels.analysis.theory import expressivity, freeprob, spectra  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEPTHS = (2, 8, 32, 128)
EMPIRICAL_DEPTHS = (2, 8, 32)
CONFIGS = {  # name: (phi, weights, q*) ; ReLU's D^2 does not depend on q*
    "tanh_orthogonal": ("tanh", "orthogonal", 1 / 64),
    "tanh_gaussian": ("tanh", "gaussian", 1 / 64),
    "relu_orthogonal": ("relu", "orthogonal", 1.0),
    "relu_gaussian": ("relu", "gaussian", 1.0),
}


def _reports() -> Path:
    path = Path(os.environ.get("NEUROMODELS_REPORTS", "reports")) / "theory"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save(fig, name: str) -> None:
    import matplotlib.pyplot as plt

    for folder in (_reports(), REPO / "docs" / "figures"):
        fig.savefig(folder / name, dpi=110)
    plt.close(fig)


def test_spectra_versus_depth_orthogonal_tanh_stays_isometric():
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: dict[str, dict] = {}
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    for ax, (name, (phi, weights, q)) in zip(axes, CONFIGS.items()):
        sw2 = 2.0 if phi == "relu" else freeprob.sigma_w2_for_q_star(phi, q)
        results[name] = {}
        y_top = 0.0
        for i, depth in enumerate(DEPTHS):
            spec = spectra.jacobian_spectrum(
                phi, depth, sigma_w2=sw2, q_star=q, weights=weights, sigma_b2=0.0 if phi == "relu" else None, points=800
            )
            row = {
                "variance": spec.attrs["variance"],
                "edge": spec.attrs["edge"],
                "max_singular_value": math.sqrt(spec.attrs["edge"]),
                "mass_below_grid": spec.attrs["mass_below_grid"],
            }
            log10 = spec["log_eigenvalue"].values / math.log(10)
            curve = spec["log_density"].values * math.log(10)
            ax.plot(log10, curve, color=f"C{i}", label=f"L={depth}")
            # the last quarter of the grid is clustered at the edge, where ReLU at L=2 diverges (arcsine law)
            bulk = float(curve[: int(0.75 * len(curve))].max())
            y_top = max(y_top, min(1.05 * float(curve.max()), 3 * bulk))
            if depth in EMPIRICAL_DEPTHS:
                a = spec.attrs
                eig = spectra.empirical_jjt_eigenvalues(
                    phi,
                    depth,
                    400,
                    a["sigma_w2"],
                    a["sigma_b2"],
                    a["q_star"],
                    weights,
                    draws=2,
                    inputs_per_draw=2,
                    seed=depth,
                    progress=False,
                )
                row["empirical_variance"] = float(eig.var())
                row["empirical_max"] = float(eig.max())
                row["ks_distance"] = spectra.ks_distance(eig, spec, floor=1e-28 * eig.max())
                positive = eig[eig > 1e-28 * eig.max()]
                bins = np.linspace(max(log10.min(), -12), log10.max(), 60)
                ax.hist(
                    np.log10(positive),
                    bins=bins,
                    weights=np.full(len(positive), 1 / len(eig) / np.diff(bins)[0]),
                    color=f"C{i}",
                    alpha=0.25,
                )
            results[name][depth] = row
        ax.set_xlim(-12 if "orthogonal" not in name or phi == "relu" else -1.5, None)
        ax.set_ylim(0, y_top)
        ax.set_title(name.replace("_", ", ") + (f", q*={q:.3g}" if phi == "tanh" else ""), fontsize=9)
        ax.set_xlabel(r"$\log_{10}\lambda$ ($JJ^T$)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"density of $\log_{10}\lambda$")
    fig.tight_layout()
    _save(fig, "theory_spectrum_depths.png")
    (_reports() / "spectra_vs_depth.json").write_text(json.dumps(results, indent=2))
    # Pennington et al. 2017: orthogonal tanh at small q* stays concentrated even at L=128 ...
    assert results["tanh_orthogonal"][128]["variance"] < 0.3
    assert results["tanh_orthogonal"][128]["max_singular_value"] < 2.0
    # ... while ReLU (any weights) and Gaussian tanh spread linearly with depth
    for name, slope in (("relu_orthogonal", 1.0), ("relu_gaussian", 2.0)):
        assert results[name][128]["variance"] == pytest.approx(slope * 128)
    assert results["tanh_gaussian"][128]["variance"] > 128
    assert (
        results["tanh_gaussian"][128]["max_singular_value"] > 10 * results["tanh_orthogonal"][128]["max_singular_value"]
    )
    for name in CONFIGS:
        for depth in EMPIRICAL_DEPTHS:
            assert results[name][depth]["ks_distance"] < 0.05, (name, depth)


DEPTH_16 = {  # figure name: (phi, weights, q*, networks, inputs per network, KS bound, log10 range shown)
    "tanh_orthogonal": ("tanh", "orthogonal", 1 / 64, 4, 4, 0.02, None),
    "tanh_gaussian": ("tanh", "gaussian", 1 / 64, 4, 4, 0.02, None),
    # the top atom's share fluctuates by ~0.06 per input at width 400: 48 inputs keep its error ~0.01
    "hard_tanh_orthogonal": ("hard_tanh", "orthogonal", 0.25, 24, 2, 0.03, (-6.0, 0.45)),
}


def test_depth_16_spectra_match_sampled_jacobians():
    """The docs' depth-16 figures: tanh at q* = 1/64 (Pennington et al. 2017 Fig. 1-2 setting) and hard-tanh at
    q* = 1/4, whose J J^T has atoms 0.0455 at 0 and 0.272 at (1/p)^16 = 2.107 beside a continuous part of mass
    0.683 (issue 12). Width 400; KS over all eigenvalues, atoms as jumps of the CDF."""
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")

    results = {}
    for name, (phi, weights, q, networks, inputs, bound, shown) in DEPTH_16.items():
        spec = spectra.jacobian_spectrum(phi, 16, q_star=q, weights=weights)
        a = spec.attrs
        eig = spectra.empirical_jjt_eigenvalues(
            phi,
            16,
            400,
            a["sigma_w2"],
            a["sigma_b2"],
            q,
            weights,
            draws=networks,
            inputs_per_draw=inputs,
            seed=0,
            progress=False,
        )
        membership = spectra.atom_membership(eig, spec)
        results[name] = {
            "sigma_w2": a["sigma_w2"],
            "variance": a["variance"],
            "edge": a["edge"],
            "continuous_edge": a["continuous_edge"],
            "atoms": spectra.spectrum_atoms(spec),
            "continuous_mass": a["continuous_mass"],
            "mass_below_grid": a["mass_below_grid"],
            "mean_from_spectrum": spectra.spectrum_moment(spec, 1),
            "empirical_variance": float(eig.var()),
            "empirical_max": float(eig.max()),
            "empirical_atom_fractions": [
                float(np.mean(membership == i)) for i in range(len(spectra.spectrum_atoms(spec)))
            ],
            "ks_distance": spectra.ks_distance(eig, spec),
        }
        for folder in (_reports(), REPO / "docs" / "figures"):
            spectra.plot_spectrum(spec, eig, folder / f"theory_spectrum_{name}_L16.png", log10_range=shown)
        assert results[name]["ks_distance"] < bound, (name, results[name]["ks_distance"])
    (_reports() / "spectra_depth_16.json").write_text(json.dumps(results, indent=2))
    hard = results["hard_tanh_orthogonal"]
    p = math.erf(1 / math.sqrt(2 * 0.25))
    assert [atom["mass"] for atom in hard["atoms"]] == [pytest.approx(1 - p), pytest.approx(1 - 16 * (1 - p))]
    assert hard["empirical_atom_fractions"][1] == pytest.approx(1 - 16 * (1 - p), abs=0.02)
    assert hard["mean_from_spectrum"] == pytest.approx(1.0, rel=2e-3)


def test_trajectory_length_grows_exponentially_in_the_chaotic_phase():
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    results = {}
    for i, sw2 in enumerate((1.0, 4.0, 16.0, 64.0)):
        stats = expressivity.trajectory_statistics(
            "hard_tanh", depth=12, width=100, sigma_w2=sw2, sigma_b2=0.0, points=40_000, seed=0, progress=False
        )
        d = stats["depth"].values
        resolved = stats["length_half"].values / stats["length"].values > 0.98
        measured = expressivity.growth_rate(stats["length"].values[resolved])
        results[sw2] = {
            "length": stats["length"].values.tolist(),
            "resolved_depths": int(resolved.sum() - 1),
            "measured_factor": measured,
            "mean_field_factor": expressivity.growth_rate(stats["mean_field_length"].values),
            "raghu_factor": stats.attrs["raghu_factor"],
            "transitions": stats["transitions"].values.tolist(),
            "patterns": stats["patterns"].values.tolist(),
        }
        ax.semilogy(d, stats["length"], "o-", color=f"C{i}", ms=3, label=f"$\\sigma_w^2$={sw2:g}")
        ax.semilogy(d, stats["bound"], ":", color=f"C{i}")
        ax.semilogy(d, stats["mean_field_length"], "--", color=f"C{i}", lw=0.8)
    ax.set_xlabel("depth d")
    ax.set_ylabel("trajectory length (hard-tanh, k=100)")
    ax.set_title("measured (o), mean field (--), Raghu bound l(x) a^d (:)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, "theory_trajectory_growth.png")
    (_reports() / "trajectory_growth.json").write_text(json.dumps(results, indent=2))
    # Raghu et al.: exponential growth with depth in the chaotic phase, faster for larger sigma_w
    factors = [results[s]["measured_factor"] for s in (4.0, 16.0, 64.0)]
    assert factors[0] > 1.2 and factors[0] < factors[1] < factors[2]
    assert results[1.0]["measured_factor"] < 1.0
    for sw2 in (4.0, 16.0, 64.0):
        assert results[sw2]["measured_factor"] == pytest.approx(results[sw2]["mean_field_factor"], rel=0.1)
        assert results[sw2]["measured_factor"] > (2 / math.pi) ** 0.25 * results[sw2]["raghu_factor"]
        assert results[sw2]["patterns"][-1] > results[sw2]["patterns"][1]
