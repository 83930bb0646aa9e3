"""The sample cache trusts only files that sample() wrote itself, in a folder only this user can write.

A planted file is a valid netCDF assembly with the right ``sample_key`` but other values (all zeros): before
the digest check, any such file under the expected name was returned as the sample.
"""

from __future__ import annotations

import hashlib
import stat
import warnings

import numpy as np
import pytest
import xarray as xr

from neuromodels.datasets import sample
from neuromodels.datasets import samples as samples_module


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NEUROMODELS_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def truth() -> xr.DataArray:
    return sample("ventral", seed=0, cache=False)


def _plant(path, truth, *, record: bool) -> bytes:
    planted = truth.copy(data=np.zeros_like(truth.values))
    assert planted.attrs["sample_key"] == truth.attrs["sample_key"]
    planted.to_netcdf(path, engine="netcdf4")
    data = path.read_bytes()
    if record:  # whoever can write the folder can write the digest too
        path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return data


def _assert_is_the_sample(obj, truth):
    # exact: a cache round trip of the same seeded generation on one machine
    xr.testing.assert_identical(obj, truth)


def test_cache_folder_is_created_private_and_each_file_recorded(cache, truth):
    _assert_is_the_sample(sample("ventral", seed=0), truth)
    path = samples_module.sample_cache_path("ventral", seed=0)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    record = path.with_name(path.name + ".sha256")
    assert record.read_text() == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, record.name]


def test_planted_file_with_the_matching_key_is_not_trusted(cache, truth):
    path = samples_module.sample_cache_path("ventral", seed=0)
    path.parent.mkdir(parents=True, mode=0o700)
    planted = _plant(path, truth, record=False)
    _assert_is_the_sample(sample("ventral", seed=0), truth)
    assert path.read_bytes() != planted  # replaced by the generated sample, with its digest
    _assert_is_the_sample(sample("ventral", seed=0), truth)


def test_file_changed_after_it_was_written_is_regenerated(cache, truth):
    sample("ventral", seed=0)
    path = samples_module.sample_cache_path("ventral", seed=0)
    planted = _plant(path, truth, record=False)  # the digest recorded at write time is kept
    _assert_is_the_sample(sample("ventral", seed=0), truth)
    rewritten = path.read_bytes()
    assert rewritten != planted
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == hashlib.sha256(rewritten).hexdigest()


def test_group_writable_sample_folder_is_not_used(cache, truth):
    path = samples_module.sample_cache_path("ventral", seed=0)
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o775)
    planted = _plant(path, truth, record=True)
    with pytest.warns(RuntimeWarning, match=r"samples: it is writable by group or others \(mode 775\)"):
        _assert_is_the_sample(sample("ventral", seed=0), truth)
    assert path.read_bytes() == planted  # nothing is written into a folder others can write either


def test_cache_false_ignores_an_unsafe_folder_silently(cache, truth):
    path = samples_module.sample_cache_path("ventral", seed=0)
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o777)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_is_the_sample(sample("ventral", seed=0, cache=False), truth)
