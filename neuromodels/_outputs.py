"""Where commands write: output checks before any work, report folders, and the lock one writer holds.

One rule for every command that writes a report folder (``--out``):

* **Checked first.** :func:`check_out_folder` runs before any work: ``--out`` that is a file, a folder that
  cannot be created or written (read-only, permission denied), or a non-empty folder that is not a report folder
  is a :class:`~neuromodels.errors.ConfigError` naming the path; nothing is created.
* **A report folder is one with a manifest.** Every command records what it wrote in ``.neuromodels-report.json``
  (:data:`MANIFEST`: the command and the files, relative paths). A non-empty folder without a manifest is
  refused (an older report, recognised by a ``report.json`` with a ``command`` or ``files`` key, is accepted).
* **Never delete a file the command did not write.** :class:`ReportFolder` replaces the files it writes one by
  one (each atomically, ``report.json`` and the manifest last), and removes only files that the folder's
  previous manifest lists and this run did not write again (the stale outputs of an earlier run). Anything else
  in the folder (your notes, other files) stays.
* **Nothing half-written.** Outputs are written into a private staging folder inside ``--out`` and moved into
  place only once the command succeeded; a failed run leaves the folder as it was (and removes it if it made
  it). Files a command must write in place while it works (training checkpoints, a search journal, which make a
  rerun resume) are declared with :meth:`ReportFolder.keep` and recorded in the manifest at once.
* **One writer.** :class:`ReportFolder` takes an exclusive lock (``flock`` on ``.neuromodels.lock``) for as long
  as the command runs; a second command on the same ``--out`` is refused with a message naming the first one's
  process id. The kernel releases the lock of a killed process.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from neuromodels.errors import ConfigError

__all__ = [
    "MANIFEST",
    "LOCK",
    "check_out_folder",
    "check_out_file",
    "is_report_folder",
    "ReportFolder",
    "write_report",
]

MANIFEST = ".neuromodels-report.json"
LOCK = ".neuromodels.lock"
STAGING = "neuromodels-staging"  # name given to private_folder: .neuromodels-staging.XXXXXXXX.tmp
_OURS = (MANIFEST, LOCK)


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _legacy_report(folder: Path) -> bool:
    """A ``report.json`` that a neuromodels command wrote before manifests existed."""
    try:
        data = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and ("command" in data or "files" in data or "figures" in data)


def is_report_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is empty (ignoring our own lock and staging files) or holds a neuromodels report."""
    folder = Path(folder)
    if _manifest(folder) is not None or _legacy_report(folder):
        return True
    return all(_transient(p.name) for p in folder.iterdir())


def _transient(name: str) -> bool:
    """Our own lock, and the private folders of a run in progress (or killed): not the user's files."""
    return (
        name in _OURS
        or name.startswith((f".{STAGING}.", ".neuromodels-probe."))
        or (name.startswith(f".{MANIFEST}.") and name.endswith(".tmp"))
    )


def _probe_writable(folder: Path, shown: Path, option: str) -> None:
    """Create and remove a private folder in ``folder``: the one test of writability that also holds for root
    and read-only mounts."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".neuromodels-probe.", dir=folder))
    except OSError as err:
        raise ConfigError(f"{option} {shown}: cannot write in {folder} ({err.strerror or err})") from None


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if os.path.lexists(parent):
            return parent
    return Path(".")


def check_out_folder(out: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """``Path(out)`` once it is known to be usable as a report folder; :class:`ConfigError` naming it otherwise.

    Creates nothing: run it before any work. Refuses a file, a folder that cannot be created or written, and a
    non-empty folder that is not a report folder (see the module docstring).
    """
    folder = Path(out)
    if os.path.lexists(folder):
        if not folder.is_dir():
            raise ConfigError(f"{option} {folder}: exists and is not a folder; give a folder for the report")
        try:
            report = is_report_folder(folder)
        except OSError as err:
            raise ConfigError(f"{option} {folder}: cannot read the folder ({err.strerror or err})") from None
        if not report:
            raise ConfigError(
                f"{option} {folder}: is not a neuromodels report folder (it holds other files and no "
                f"{MANIFEST}); choose a new or empty folder, nothing of yours is overwritten"
            )
        _probe_writable(folder, folder, option)
        return folder
    ancestor = _nearest_existing(folder.parent if folder.parent != folder else folder)
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {folder}: cannot create it, {ancestor} is not a folder")
    _probe_writable(ancestor, folder, option)
    return folder


def check_out_file(out: str | os.PathLike[str], *, suffixes: tuple[str, ...], option: str = "OUT") -> Path:
    """``Path(out)`` once it can be written as one file with one of ``suffixes``; ConfigError naming it otherwise.

    Refuses a folder, a name without the expected suffix (a netCDF file named ``out.txt``), and a location that
    cannot be written. Creates nothing.
    """
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name such as {path / ('data' + suffixes[0])}")
    if not path.name.endswith(suffixes):
        raise ConfigError(f"{option} {path}: the output is netCDF, give a file name ending in {' or '.join(suffixes)}")
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path}: cannot create it, {ancestor} is not a folder")
    _probe_writable(ancestor, path, option)
    return path


class _Lock:
    """An exclusive ``flock`` on ``folder/LOCK`` (the file holds the owner's pid); the lock file is removed on
    release. Where ``fcntl`` is missing (Windows) it locks nothing."""

    def __init__(self, folder: Path, option: str) -> None:
        self.path = folder / LOCK
        self.option = option
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(
                    f"{self.option} {self.path.parent}: another neuromodels command is writing there "
                    f"(process {owner}); wait for it to finish or choose another folder"
                ) from None
            try:  # the file we locked must still be the one at the path (a releasing owner unlinks it)
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)  # closing releases the flock
        self.fd = None


class ReportFolder:
    """A report folder being written by one command (see the module docstring for the rules).

    ::

        folder = check_out_folder(args.out)            # before any work
        ...                                              # load and check the inputs
        with ReportFolder(folder, "simulate") as report:
            write_netcdf_atomic(result, report.path("simulation.nc"))
            write_json(report.path("report.json"), ...)
        # on success the files are in place and listed in folder/.neuromodels-report.json

    :meth:`path` gives where to write an output (in the staging folder); :meth:`keep` declares a file written in
    place while the command works (checkpoints) and returns its final path.
    """

    def __init__(self, folder: str | os.PathLike[str], command: str, *, option: str = "--out") -> None:
        self.folder = Path(folder)
        self.command = command
        self.option = option
        self._staged: list[str] = []
        self._kept: list[str] = []
        self._created: list[Path] = []
        self._lock = _Lock(self.folder, option)
        self._staging_context: Any = None
        self._staging: Path | None = None
        self._previous: list[str] = []

    # ------------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ReportFolder:
        from neuromodels.datasets._io import private_folder

        check_out_folder(self.folder, option=self.option)
        missing = [p for p in [self.folder, *self.folder.parents] if not os.path.lexists(p)]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first
        try:
            self._lock.acquire()
            previous = _manifest(self.folder)
            self._previous = [str(f) for f in previous["files"]] if previous else []
            self._staging_context = private_folder(self.folder, STAGING)
            self._staging, _ = self._staging_context.__enter__()
        except BaseException:
            self._abandon()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self._staging_context is not None:
                self._staging_context.__exit__(None, None, None)
                self._staging_context = None
            if exc_type is not None:
                self._abandon()
            else:
                self._lock.release()

    # --------------------------------------------------------------------------------------------- files

    def path(self, name: str) -> Path:
        """Where to write the output ``name`` (a relative path such as ``cnn/filters.png``): a path in the
        staging folder, moved to ``folder/name`` when the command succeeds."""
        rel = self._relative(name)
        assert self._staging is not None, "use ReportFolder as a context manager"
        if rel not in self._staged:
            self._staged.append(rel)
        target = self._staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def keep(self, name: str) -> Path:
        """Declare ``name`` as written in place by the command while it works (a checkpoint, a journal); it is
        listed in the manifest at once, so a rerun after a crash finds a report folder, and never removed as
        stale. Returns ``folder/name``."""
        rel = self._relative(name)
        if rel not in self._kept:
            self._kept.append(rel)
            self._write_manifest(complete=False)
        target = self.folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys([*self._staged, *self._kept, MANIFEST]))

    # ------------------------------------------------------------------------------------------ internals

    @staticmethod
    def _relative(name: str) -> str:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"report file names are relative paths inside the folder, got {name!r}")
        return rel.as_posix()

    def _write_manifest(self, *, complete: bool) -> None:
        from neuromodels._reports import write_json

        recorded = self.files if complete else list(dict.fromkeys([*self._previous, *self._kept, MANIFEST]))
        write_json(self.folder / MANIFEST, {"command": self.command, "complete": complete, "files": recorded})

    def _commit(self) -> None:
        assert self._staging is not None
        last = [n for n in ("report.json",) if n in self._staged]
        for rel in [n for n in self._staged if n not in last] + last:
            source = self._staging / rel
            if not source.exists():
                continue  # declared but not written: nothing to move
            target = self.folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise ConfigError(f"{self.option} {self.folder}: {rel} is a folder, cannot replace it with a file")
            os.replace(source, target)
        self._remove_stale()
        self._write_manifest(complete=True)

    def _remove_stale(self) -> None:
        """Remove the files the previous manifest lists that this run did not write (and folders they leave
        empty); nothing else."""
        current = set(self.files)
        for rel in self._previous:
            if rel in current or rel in _OURS:
                continue
            try:
                rel = self._relative(rel)
            except ValueError:
                continue  # a manifest naming something outside the folder is not followed
            target = self.folder / rel
            if target.is_symlink() or target.is_file():
                target.unlink()
                for parent in target.relative_to(self.folder).parents:
                    if str(parent) == ".":
                        break
                    try:
                        (self.folder / parent).rmdir()
                    except OSError:
                        break

    def _abandon(self) -> None:
        """After a failure: release the lock; keep what a rerun resumes from (the files declared with
        :meth:`keep`), else remove the empty folders made for them and the folders this run created."""
        self._lock.release()
        if any((self.folder / rel).exists() for rel in self._kept):
            return  # checkpoints to resume from: the folder stays, its manifest lists them
        for rel in self._kept:
            for parent in Path(rel).parents:
                if str(parent) == ".":
                    break
                try:
                    (self.folder / parent).rmdir()
                except OSError:
                    pass
        if not self._created:
            return
        manifest = self.folder / MANIFEST
        if manifest.is_file() and not manifest.is_symlink():
            manifest.unlink()  # written by keep() in a folder this run made
        for folder in self._created:  # deepest first; rmdir removes only empty folders
            try:
                folder.rmdir()
            except OSError:
                break


def write_report(
    out: str | os.PathLike[str],
    command: str,
    report: Any,
    figures: dict[str, Any],
    *,
    dpi: int = 110,
    also: str | os.PathLike[str] | None = None,
    option: str = "--out",
    also_option: str = "--figures",
) -> Path:
    """Write ``report`` as ``report.json`` and each matplotlib figure of ``figures`` (file name -> figure) as PNG
    into the report folder ``out`` by the rules of this module (checked, staged, moved into place on success,
    recorded in the manifest; files of yours are never touched); returns ``Path(out)``.

    The one writer of the worked examples (``examples/*.py``). With ``also``, the PNGs are written there too
    (each atomically, replacing files of the same names: the docs keep the examples' figures that way); a folder
    that cannot be written is a :class:`ConfigError` naming ``also_option``.
    """
    from neuromodels._reports import write_json
    from neuromodels.datasets._io import atomic_path

    check_out_folder(out, option=option)
    if also is not None:  # first, so that a folder it cannot write leaves --out as it was
        also = Path(also)
        try:
            also.mkdir(parents=True, exist_ok=True)
            for name, fig in figures.items():
                with atomic_path(also / name, suffix=".png") as tmp:
                    fig.savefig(tmp, dpi=dpi, format="png")
        except OSError as err:
            raise ConfigError(f"{also_option} {also}: cannot write the figures ({err.strerror or err})") from None
    with ReportFolder(out, command, option=option) as folder:
        for name, fig in figures.items():
            fig.savefig(folder.path(name), dpi=dpi, format="png")
        write_json(folder.path("report.json"), report)
    return Path(out)
