"""The compiled LIF kernel's cache (neuromodels/spiking/_compiled.py) loads only a library this user built.

A library planted in the cache under the expected name is a real shared object whose constructor writes a
marker file when it is loaded (and whose kernel functions do nothing): the marker must never appear, and the
network must still give the NumPy loop's results, which proves the real kernel was built and loaded instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import warnings

import numpy as np
import pytest

from neuromodels.spiking import SpikingNetwork, _compiled, poisson_spikes
from neuromodels.spiking.network import run_network_numpy

PLANTED_SOURCE = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) { FILE *f = fopen(MARKER, "w"); if (f) fclose(f); }
void lif_layer_f64(void) {}
void lif_layer_f32(void) {}
"""


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache root (not yet created) for the kernel, with the process's loaded kernel forgotten."""
    if os.environ.get("NEUROMODELS_NO_COMPILE"):
        pytest.skip("NEUROMODELS_NO_COMPILE is set")
    root = tmp_path / "cache"
    monkeypatch.setenv("NEUROMODELS_CACHE", str(root))
    _compiled.lif_kernel.cache_clear()
    yield root
    _compiled.lif_kernel.cache_clear()


@pytest.fixture()
def planted(tmp_path):
    """``(bytes of a planted library, marker path its constructor creates)``; skips without a C compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler here: nothing is compiled or loaded")
    marker = tmp_path / "constructor-ran"
    source = tmp_path / "planted.c"
    source.write_text(PLANTED_SOURCE)
    library = tmp_path / "planted.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    return library.read_bytes(), marker


def _assert_real_kernel_runs():
    """The loaded kernel gives the NumPy loop's rasters and voltages (the planted one leaves them at zero)."""
    lib = _compiled.lif_kernel()
    assert lib is not None
    net = SpikingNetwork(100, [30], weight_mean=0.9, weight_std=0.6, seed=1)
    x = np.asarray(poisson_spikes(100, rate=20.0, duration=0.1, dt=1e-3, seed=0)[0])[None]
    fast = run_network_numpy(net, x, 1e-3, "exact", dtype="float64", record_voltage=True)
    original = _compiled.lif_kernel
    try:
        _compiled.lif_kernel = lambda: None
        slow = run_network_numpy(net, x, 1e-3, "exact", dtype="float64", record_voltage=True)
    finally:
        _compiled.lif_kernel = original
    assert int(slow.spikes[0].sum()) > 10 and np.abs(slow.voltage[0]).max() > 0
    # exact: the same IEEE operations in the same order (test_spiking_compiled.py)
    np.testing.assert_array_equal(fast.spikes[0], slow.spikes[0])
    np.testing.assert_array_equal(fast.voltage[0], slow.voltage[0])


def _record(folder, name, data):
    (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")


def test_cache_folder_is_created_private_and_the_digest_recorded(cache, planted):
    _assert_real_kernel_runs()
    folder, name = cache / "kernels", _compiled.library_name()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == [name, f"{name}.sha256"]  # no temporary files left
    library = folder / name
    assert library.stat().st_uid == os.geteuid() and library.stat().st_mode & 0o077 == 0
    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    assert (folder / f"{name}.sha256").read_text() == f"{digest}  {name}\n"


def test_planted_library_in_a_group_writable_cache_folder_is_not_loaded(cache, planted):
    data, marker = planted
    folder, name = cache / "kernels", _compiled.library_name()
    folder.mkdir(parents=True)
    folder.chmod(0o775)  # as os.makedirs leaves it under umask 002
    (folder / name).write_bytes(data)
    _record(folder, name, data)  # whoever can plant the library can plant its digest too
    with pytest.warns(RuntimeWarning, match=r"kernels: it is writable by group or others \(mode 775\)"):
        _assert_real_kernel_runs()
    assert not marker.exists()
    assert (folder / name).read_bytes() == data  # an unsafe folder is not written to either
    assert stat.S_IMODE(folder.stat().st_mode) == 0o775


def test_cache_folder_owned_by_another_user_is_refused(cache, planted, monkeypatch):
    data, marker = planted
    folder, name = cache / "kernels", _compiled.library_name()
    folder.mkdir(parents=True, mode=0o700)
    (folder / name).write_bytes(data)
    _record(folder, name, data)
    other_uid = folder.stat().st_uid + 1
    monkeypatch.setattr(os, "geteuid", lambda: other_uid)  # the folder now belongs to someone else
    with pytest.warns(RuntimeWarning, match=r"it is owned by uid \d+, not by this user"):
        _assert_real_kernel_runs()
    assert not marker.exists()


@pytest.mark.parametrize("record", ["kept from the real build", "absent"])
def test_tampered_library_in_a_private_folder_is_rebuilt(cache, planted, record):
    data, marker = planted
    folder, name = cache / "kernels", _compiled.library_name()
    if record == "absent":  # e.g. a library left by an older version, or copied in by hand
        folder.mkdir(parents=True, mode=0o700)
        (folder / name).write_bytes(data)
    else:
        _assert_real_kernel_runs()
        _compiled.lif_kernel.cache_clear()
        # same owner and mode, the recorded digest kept; replaced by a rename, not rewritten in place (this process
        # still maps the real library's file)
        (folder / "tampered").write_bytes(data)
        os.chmod(folder / "tampered", 0o700)
        os.replace(folder / "tampered", folder / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a private folder: rebuilt silently
        _assert_real_kernel_runs()
    assert not marker.exists()
    rebuilt = (folder / name).read_bytes()
    assert rebuilt != data
    assert (folder / f"{name}.sha256").read_text().split()[0] == hashlib.sha256(rebuilt).hexdigest()


def test_symlink_under_the_library_name_is_not_followed(cache, planted, tmp_path):
    data, marker = planted
    folder, name = cache / "kernels", _compiled.library_name()
    folder.mkdir(parents=True, mode=0o700)
    elsewhere = tmp_path / "elsewhere.so"
    elsewhere.write_bytes(data)
    (folder / name).symlink_to(elsewhere)
    _record(folder, name, data)
    _assert_real_kernel_runs()
    assert not marker.exists()
    assert elsewhere.read_bytes() == data and not (folder / name).is_symlink()
