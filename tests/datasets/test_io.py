"""datasets/_io.py: atomic writes that no other user can redirect; neuromodels/_cache.py: folders only the user
can write and files checked against a recorded digest.

The race these tests model: a writer (netCDF4, HDF5, savefig) creates its file by name, so a name that other
users can create in the meantime (a temporary name in a shared folder, deleted so that the writer can recreate
it) lets them plant a symlink there and make the writer overwrite whatever it points to. The tests act as that
other user at the moment the writer receives its path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neuromodels._cache import UnsafeFolderError, open_private_folder, open_verified_file, record_digest
from neuromodels.datasets._io import atomic_path, write_netcdf_atomic


@pytest.fixture()
def shared(tmp_path) -> Path:
    """A folder everyone may write to (mode 0777, no sticky bit)."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def test_writer_path_is_in_a_fresh_private_folder(shared):
    target = shared / "report.json"
    with atomic_path(target, suffix=".json") as tmp:
        assert not tmp.exists()
        assert tmp.name == "report.json"
        parent = Path(os.path.realpath(tmp.parent))
        assert parent != shared and parent.parent == shared  # beside the target, not in the shared folder itself
        st = os.stat(tmp.parent)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
        assert os.listdir(tmp.parent) == []
        tmp.write_text("{}\n")
    assert target.read_text() == "{}\n"
    assert sorted(os.listdir(shared)) == ["report.json"]  # the private folder is gone
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # the writer's usual permissions, not 0600


def test_symlink_planted_under_the_writer_name_in_the_shared_folder_is_not_followed(shared, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = shared / "out.txt"
    with atomic_path(target) as tmp:
        (shared / tmp.name).symlink_to(victim)  # the other user plants a link at the name the writer was given
        tmp.write_text("ours\n")
    assert victim.read_text() == "precious\n"
    assert target.read_text() == "ours\n" and not target.is_symlink()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_private_folder_swapped_for_another_does_not_redirect_the_writer(shared, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = shared / "out.txt"
    with atomic_path(target) as tmp:
        private = next(p for p in shared.iterdir() if p.name.startswith(".out.txt."))
        private.rename(shared / "moved-away")  # possible in a shared folder without the sticky bit
        private.mkdir()
        (private / tmp.name).symlink_to(victim)
        tmp.write_text("ours\n")
    assert victim.read_text() == "precious\n"
    assert target.read_text() == "ours\n"


def test_failed_write_leaves_the_previous_file_and_nothing_else(shared):
    target = shared / "data.nc"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target, suffix=".nc") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous"
    assert os.listdir(shared) == ["data.nc"]


def test_write_netcdf_atomic_round_trip(shared):
    ds = xr.Dataset({"v": (("time", "cell"), np.arange(12.0).reshape(4, 3))}, attrs={"source": "test"})
    path = write_netcdf_atomic(ds, shared / "ds.nc", engine="netcdf4")
    with xr.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), ds)
    assert os.listdir(shared) == ["ds.nc"]


def test_private_folder_is_created_0700_and_a_shared_one_refused(tmp_path):
    root = tmp_path / "cache"
    fd = open_private_folder(root / "samples")
    os.close(fd)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "samples").stat().st_mode) == 0o700
    (root / "samples").chmod(0o770)
    with pytest.raises(UnsafeFolderError, match=r"writable by group or others \(mode 770\).*chmod go-w"):
        open_private_folder(root / "samples")


def test_digest_record_detects_a_changed_file(tmp_path):
    fd = open_private_folder(tmp_path / "cache")
    try:
        (tmp_path / "cache" / "a.nc").write_bytes(b"written by us")
        assert open_verified_file(fd, "a.nc") is None  # no record yet
        record_digest(fd, "a.nc")
        verified = open_verified_file(fd, "a.nc")
        assert verified is not None
        os.close(verified)
        (tmp_path / "cache" / "a.nc").write_bytes(b"changed since")
        assert open_verified_file(fd, "a.nc") is None
        (tmp_path / "cache" / "a.nc").write_bytes(b"written by us")
        (tmp_path / "cache" / "a.nc").chmod(0o666)  # right bytes, but others could change them at any time
        assert open_verified_file(fd, "a.nc") is None
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
