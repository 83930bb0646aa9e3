"""examples/cowley_v4.py: Cowley et al. 2023 V4 session 210325, from the NaN-padded array to ceiled model scores.

Fast tests: the assembly built from the real array (when ``../shared/data`` is present), the noise-corrected R^2
(``r2_ER``, Pospisil & Bair 2021) on synthetic data with a known answer, the Gabor units' phase invariance and
orientation tuning, and the missing-data exit. The slow test (``make reproduce``) runs the example in ``--quick``
mode and asserts the ceilings and the model ordering the data show; values measured on the team's copy (seed 0)
are written next to each assertion.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (the same name as tests/examples/test_examples.py uses; pytest's
    importlib mode cannot import one test module from another)."""
    module_name = f"neuromodels_example_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(scope="module")
def v4():
    return example("cowley_v4")


# --------------------------------------------------------------------------------------------------------------
# fast


def test_missing_data_exits_2_with_a_message_and_writes_nothing(v4, tmp_path, capsys):
    out = tmp_path / "out"
    assert v4.main(["--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--data" in err and "responses_raw_responses_210325.npy" in err
    assert "Traceback" not in err and not out.exists()


def test_real_array_nan_padding_dropped_and_repeats_counted_per_image(v4, shared_data):
    folder = shared_data / v4.FOLDER
    raw = np.load(folder / v4.RAW)  # (50 neurons, 640 images, 10 slots)
    ids = [f"image{i + 1:04d}" for i in range(raw.shape[1])]
    asm = v4.load_assembly(folder / v4.RAW, ids)
    finite_slots = np.isfinite(raw).all(axis=0)  # (image, slot): a slot is NaN for all neurons or for none
    assert np.array_equal(finite_slots, np.isfinite(raw).any(axis=0))
    assert asm.sizes == {"presentation": int(finite_slots.sum()), "neuroid": 50}  # 4,840 of 6,400 slots
    assert asm.sizes["presentation"] == 4840
    assert not np.isnan(asm.values).any()
    per_image = np.unique(asm["stimulus_id"].values, return_counts=True)
    assert per_image[1].tolist() == finite_slots.sum(axis=1).tolist()  # ids sort as the images: image0001 ...
    assert sorted(set(per_image[1].tolist())) == [6, 7, 8, 9, 10]
    # the repeat means equal the data set's own repeat-averaged file
    averaged = np.load(folder / f"responses_repeat_averaged_responses_{v4.SESSION}.npy")
    means = asm.groupby("stimulus_id").mean().transpose("neuroid", "stimulus_id").values
    np.testing.assert_allclose(means, averaged, rtol=1e-12, atol=0)
    # the cube the scores use is the raw array again, stimuli in id order
    cube = v4.repeats_cube(asm)
    np.testing.assert_array_equal(cube, raw)
    # fraction of the repeat means' variance that is signal (no randomness): measured median 0.7796
    assert float(np.median(v4.explainable_fraction(raw))) == pytest.approx(0.7796, abs=1e-4)
    # the images line up: image0001 is the first file of the zip, 640 of them
    images = v4.load_images(folder / v4.IMAGES, 16)
    assert images["stimulus_id"].values.tolist() == ids and images.shape == (640, 16, 16, 3)


def _grating(size, wavelength, theta, phase):
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.cos(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / wavelength + phase)


def test_complex_units_are_phase_invariant_and_tuned_to_orientation_simple_units_are_not_invariant():
    v4 = example("cowley_v4")
    size, wavelength, n_orientations = 64, 8.0, 8
    theta = np.pi * 2 / n_orientations  # orientation index 2
    phases = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    images = np.stack([_grating(size, wavelength, theta, p) for p in phases])
    simple, complex_ = v4.gabor_responses(images, wavelengths=(4.0, 8.0, 16.0), n_orientations=n_orientations)
    centre = (slice(None), 1, 2, size // 2, size // 2)  # scale 8 px, orientation 2, the centre pixel
    energy = complex_[centre]
    assert energy.std() / energy.mean() < 0.02  # phase invariant
    even_on = simple[(slice(None), 1, 2, 0, size // 2, size // 2)]
    assert even_on.max() > 0.9 * energy.mean() and even_on.min() < 0.1 * energy.mean()  # half-wave rectified
    tuning = complex_[:, 1, :, 24:40, 24:40].mean(axis=(0, 2, 3))  # per orientation, away from the borders
    assert int(np.argmax(tuning)) == 2
    assert tuning[6] < 0.1 * tuning[2]  # orthogonal orientation
    tuning_scale = complex_[:, :, 2, 24:40, 24:40].mean(axis=(0, 2, 3))
    assert int(np.argmax(tuning_scale)) == 1  # the 8 px wavelength


def test_gabor_features_shapes_and_ids():
    import xarray as xr

    v4 = example("cowley_v4")
    rng = np.random.default_rng(0)
    images = xr.DataArray(
        rng.uniform(size=(3, 64, 64)), dims=("stimulus", "y", "x"), coords={"stimulus_id": ("stimulus", list("abc"))}
    )
    feats = v4.gabor_features(images)
    assert set(feats) == {"gabor.simple", "gabor.complex"}
    for values in feats.values():
        assert values.dims == ("presentation", "feature") and values.shape == (3, 1536)
        assert values["stimulus_id"].values.tolist() == ["a", "b", "c"]
        assert np.all(values.values >= 0)


# --------------------------------------------------------------------------------------------------------------
# slow: the example end to end on the real data


@pytest.mark.slow
def test_cowley_v4_example_ceilings_and_model_ordering(v4, shared_data, tmp_path):
    out = tmp_path / "out"
    assert v4.main(["--data", str(shared_data), "--out", str(out), "--quick"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_neurons"] == 50 and report["n_images"] == 640
    ceilings = report["ceilings"]
    assert ceilings["n_presentations"] == 4840
    assert ceilings["repeats_per_image"] == {"6": 36, "7": 261, "8": 294, "9": 45, "10": 4}
    assert ceilings["split_half"] == pytest.approx(0.759, abs=0.001)  # seeded splits: measured 0.7594
    assert ceilings["explainable_fraction"] == pytest.approx(0.7796, abs=1e-4)  # no randomness
    # two estimates of the same reliability agree per neuron (measured r = 0.999)
    per_split_half = np.asarray(ceilings["split_half_per_neuroid"])
    per_explainable = np.asarray(ceilings["explainable_fraction_per_neuroid"])
    assert np.corrcoef(per_split_half, per_explainable)[0, 1] > 0.99
    scores = report["scores"]
    for key in ("pls", "ridge"):
        ceiled = {name: s[key]["ceiled"] for name, s in scores.items()}
        # every model's best layer beats the pixels (measured, quick mode: pixels 0.07-0.11, others >= 0.2)
        for family in ("gabor", "random_cnn", "convrnn"):
            best = max(v for n, v in ceiled.items() if n.startswith(family))
            assert best > ceiled["pixels"] + 0.05, (key, family)
        # the random CNN gains with depth, and its deepest block is the best feature set of all
        assert ceiled["random_cnn.block4"] > ceiled["random_cnn.block1"] + 0.05, key
        assert max(ceiled, key=ceiled.get) == "random_cnn.block4", key
    r2 = {name: s["r2_er"]["median"] for name, s in scores.items()}
    assert r2["random_cnn.block4"] > r2["pixels"] + 0.1
    assert r2["gabor.simple"] > r2["pixels"] + 0.1
    assert report["models"]["convrnn_digits_test_accuracy"] > 0.5
    for name in ("cowley_v4_ceilings.png", "cowley_v4_layers.png", "cowley_v4_convrnn_steps.png"):
        assert (out / name).stat().st_size > 10_000
