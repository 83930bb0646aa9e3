"""netCDF files: Brain-Score / BrainIO assemblies and stimulus sets, and neuromodels recordings.

Reading
-------
:func:`open_netcdf` opens a netCDF-4 file written by anyone and dispatches on its contents:

* a recording ``xr.Dataset`` (a data variable ``response(time, cell)``) is returned as a validated recording;
* a file with one data variable on ``presentation`` x ``neuroid`` [x ``time_bin``] is an assembly and goes to
  :func:`open_brainio`.

:func:`open_brainio` reads the layout that BrainIO's ``packaging.write_netcdf`` writes (checked against
brain-score/brainio ``packaging.py``, ``assemblies.py``, ``stimuli.py`` and ``docs/SPECIFICATION.md``):

* the assembly's MultiIndex levels are written as **plain coordinates** (``assembly.reset_index(...)``) on
  ``presentation`` (``stimulus_id``, or ``image_id`` in legacy packages, ``repetition``, ``object_name``, ...),
  ``neuroid`` (``neuroid_id``, ``region``, ``animal``, ...) and ``time_bin`` (``time_bin_start``,
  ``time_bin_end``);
* the data variable is named ``data`` (the default, compressed path: ``assembly.to_dataset(name="data")`` with
  zlib level 1) or ``__xarray_dataarray_variable__`` (uncompressed ``DataArray.to_netcdf``);
* the assembly's attrs (``identifier``, ``stimulus_set_identifier``) sit on the data variable when written by
  BrainIO's code and as **global** attributes per BrainIO's specification: both are read, the variable's winning;
  BrainIO's own loader attaches ``identifier`` / ``stimulus_set_identifier`` from its catalog, so a file taken
  from a BrainIO cache may carry neither;
* extra metadata assemblies in netCDF groups (BrainIO ``extras``) are not read.

Legacy ``image_id`` is mapped to a ``stimulus_id`` coordinate (``image_id`` is kept). MultiIndex coordinates
encoded by other writers with the CF "compression by gathering" convention (cf_xarray's
``encode_multi_index_as_compress``: an integer variable with a ``compress`` attribute naming the levels) are
rebuilt as plain coordinates, because the data model forbids MultiIndex. Dimensions are put in the order
``(presentation, neuroid[, time_bin])``. Strings decode to object arrays of ``str`` (the data model's choice,
also for byte strings and fixed-width ``<U`` arrays from other writers).

Writing
-------
:func:`write_netcdf` writes a validated object atomically (temporary file, then rename):
:func:`write_brainio` for assemblies (``DataArray``), ``Dataset.to_netcdf`` for recordings (dask-backed
variables are written chunk by chunk, not loaded). Files are netCDF-4 (HDF5), numeric variables zlib level 1
like BrainIO. A written assembly opens with plain ``xarray.open_dataarray`` and is BrainIO-compatible;
``identifier`` and ``stimulus_set_identifier`` are also written as global attributes (BrainIO specification).

Exact round trips: ``load(path)`` returns an object for which ``xarray.testing.assert_identical`` holds against
what was written, with the same coordinate dtypes and NaN in place. Two things netCDF cannot hold are encoded
reversibly, and decoded on reading:

* **attributes** that netCDF cannot store exactly -- ``None``, ``bool``, lists and tuples (netCDF turns a list into
  an array and a one-element list into a scalar), dicts, nested lists, numpy arrays that are not 1-d numeric
  with at least 2 values, numpy scalars of bool type, and strings containing NUL -- are stored as a JSON string;
  the attribute ``neuromodels_json_attrs`` (a JSON list) names the attributes so encoded. numpy arrays and
  scalars inside are tagged with their dtype so they come back as numpy objects. Python ``int``/``float`` and
  numpy numbers are stored natively and read back as Python numbers (numerically equal).
* fixed-width unicode (``<U``) variables: netCDF stores variable-length strings, read back as object arrays;
  the attribute ``neuromodels_dtype`` records the numpy dtype so that ``<U`` coordinates come back as ``<U``.

Attributes that are pandas or xarray objects (BrainIO's loaded ``stimulus_set``) are not written, as BrainIO's own
writer does; a warning names them. Strings containing NUL (which HDF5 would silently truncate) in variables, and
attributes that are none of the above, raise :class:`DataFormatError`.

Provenance: a file written here keeps the ``source`` (and ``format``) attribute of the object that was written,
i.e. the recording it was converted from, so the round trip is exact; ``source`` is set to the netCDF path only
when the file has none (files from BrainIO or other writers). Error messages always name the netCDF file.

Stimulus sets
-------------
BrainIO stores a stimulus set as a CSV file (one row per stimulus; columns ``stimulus_id``, or ``image_id`` in
legacy packages, ``filename`` = the file's path inside the zip, and any metadata) and a ZIP archive of the
stimulus files. :class:`StimulusSet`, :func:`open_stimulus_set` and :func:`write_stimulus_set` read and write
that layout; images are read lazily from the zip with Pillow.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.datasets._io import atomic_path, existing_file, write_netcdf_atomic
from neuromodels.datasets._validate import validate, validate_assembly, validate_features, validate_recording
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "open_netcdf",
    "open_brainio",
    "write_netcdf",
    "write_brainio",
    "StimulusSet",
    "open_stimulus_set",
    "write_stimulus_set",
    "JSON_ATTRS_MARKER",
    "DTYPE_MARKER",
]

JSON_ATTRS_MARKER = "neuromodels_json_attrs"
"""Attribute naming (as a JSON list) the attributes of a variable or file that are stored as JSON strings."""

DTYPE_MARKER = "neuromodels_dtype"
"""Variable attribute recording the numpy dtype of fixed-width unicode variables (``<U``)."""

_DATAARRAY_VARIABLE = "__xarray_dataarray_variable__"  # xarray's name for an unnamed DataArray in a file
_ASSEMBLY_DIMS = ("presentation", "neuroid", "time_bin")
_TAG = "__neuromodels_type__"
# BrainIO's specification asks for these as global attributes of the netCDF file.
_GLOBAL_ASSEMBLY_ATTRS = ("identifier", "stimulus_set_identifier")
# Already-compressed media gain nothing from deflate.
_STORED_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".mp4", ".avi", ".mov", ".mkv", ".zip", ".gz"}


# --------------------------------------------------------------------------------------------------------------
# attribute encoding


def _json_value(value: Any, field: str, file: Any) -> Any:
    """``value`` as JSON-able data; numpy objects and tuples are tagged so they decode to the same type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biufU":
            raise DataFormatError(
                file=file,
                field=field,
                expected="numbers, strings, lists, dicts or numpy arrays",
                found=f"numpy scalar of dtype {value.dtype}",
            )
        return {_TAG: "numpy_scalar", "dtype": value.dtype.str, "value": value.item()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise DataFormatError(
                file=file,
                field=field,
                expected="numeric, bool or string numpy arrays",
                found=f"numpy array of dtype {value.dtype}",
            )
        if value.dtype.kind == "O":
            data = [_json_value(v, field, file) for v in value.ravel().tolist()]
        else:
            data = value.ravel().tolist()
        return {_TAG: "ndarray", "dtype": value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_json_value(v, field, file) for v in value]}
    if isinstance(value, list):
        return [_json_value(v, field, file) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise DataFormatError(
                file=file,
                field=field,
                expected="a dict with string keys",
                found=f"keys {[k for k in value if not isinstance(k, str)][:5]!r}",
            )
        if _TAG in value:
            raise DataFormatError(
                file=file, field=field, expected=f"a dict without the reserved key {_TAG!r}", found=sorted(value)[:10]
            )
        return {k: _json_value(v, field, file) for k, v in value.items()}
    raise DataFormatError(
        file=file,
        field=field,
        expected="an attribute of type str, int, float, bool, None, list, tuple, dict or numpy array",
        found=type(value).__name__,
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(_TAG)
        if tag == "numpy_scalar":
            return np.dtype(value["dtype"]).type(value["value"])
        if tag == "ndarray":
            dtype = np.dtype(value["dtype"])
            if dtype.kind == "O":
                flat = np.empty(len(value["data"]), dtype=object)
                flat[:] = [_from_json(v) for v in value["data"]]
                return flat.reshape(value["shape"])
            return np.asarray(value["data"], dtype=dtype).reshape(value["shape"])
        if tag == "tuple":
            return tuple(_from_json(v) for v in value["items"])
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _stored_natively(value: Any) -> bool:
    """True for attribute values that netCDF-4 stores and gives back unchanged (up to Python/numpy number type)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return -(2**63) <= int(value) < 2**63
    if isinstance(value, np.floating):
        return value.dtype in (np.float32, np.float64)
    if isinstance(value, float):
        return True
    if isinstance(value, np.ndarray):
        # netCDF gives a one-element array back as a scalar; float16 and bool arrays are not netCDF types.
        return (
            value.ndim == 1
            and value.size >= 2
            and (value.dtype.kind in "iu" or value.dtype in (np.float32, np.float64))
        )
    return False


def _encode_attrs(attrs: Mapping[Any, Any], where: str, file: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    encoded: list[str] = []
    dropped: list[str] = []
    for key, value in attrs.items():
        field = f"{where}attrs.{key}"
        if not isinstance(key, str) or not key or key in (JSON_ATTRS_MARKER, DTYPE_MARKER):
            raise DataFormatError(
                file=file,
                field=field,
                expected="a non-empty string attribute name not reserved "
                f"by neuromodels ({JSON_ATTRS_MARKER}, {DTYPE_MARKER})",
                found=repr(key),
            )
        if isinstance(value, (pd.DataFrame, pd.Series, xr.DataArray, xr.Dataset)):
            dropped.append(key)
            continue
        if _stored_natively(value):
            out[key] = value
        else:
            out[key] = json.dumps(_json_value(value, field, file), ensure_ascii=False, allow_nan=True)
            encoded.append(key)
    if dropped:
        warnings.warn(
            f"{file}: attributes {dropped} hold pandas/xarray objects, which netCDF cannot store; they are not "
            "written (as BrainIO's writer does)",
            stacklevel=4,
        )
    if encoded:
        out[JSON_ATTRS_MARKER] = json.dumps(encoded, ensure_ascii=False)
    return out


def _plain_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return np.char.decode(value, "utf-8", errors="replace").astype(object)
    return value


def _decode_attrs(attrs: Mapping[Any, Any], where: str, file: Any) -> dict[str, Any]:
    out = {str(k): _plain_attr(v) for k, v in attrs.items()}
    marker = out.pop(JSON_ATTRS_MARKER, None)
    if marker is None:
        return out
    try:
        names = json.loads(marker)
        for name in names:
            out[name] = _from_json(json.loads(out[name]))
    except (ValueError, KeyError, TypeError) as err:
        raise DataFormatError(
            file=file,
            field=f"{where}attrs.{JSON_ATTRS_MARKER}",
            expected="JSON-encoded attributes written by neuromodels",
            found=f"{type(err).__name__}: {err}",
        ) from err
    return out


# --------------------------------------------------------------------------------------------------------------
# reading


def _open_dataset(path: Path, lazy: bool) -> xr.Dataset:
    """The file's root group, loaded into memory (or dask-backed with ``lazy``), file closed when not lazy."""
    try:
        ds = xr.open_dataset(path, engine="netcdf4", chunks={} if lazy else None)
        if not lazy:
            try:
                ds.load()
            finally:
                ds.close()
        return ds
    except DataFormatError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        # netCDF4/HDF5 raise any of these on truncated or foreign files
        raise DataFormatError(
            "cannot read the file as netCDF-4 (truncated or not netCDF?)",
            file=path,
            field="<file>",
            expected="a readable netCDF-4 file",
            found=f"{type(err).__name__}: {err}",
        ) from err


def _text_array(values: np.ndarray, field: str, file: Any) -> np.ndarray:
    """Object array of ``str`` from ``<U``, byte-string or object arrays."""
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(values.reshape(-1).tolist()):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(file=file, field=field, expected="UTF-8 text", found=str(err)) from err
        elif not isinstance(v, str):
            raise DataFormatError(file=file, field=field, expected="strings", found=f"a {type(v).__name__} value")
        flat[i] = v
    return out


def _decode_variables(ds: xr.Dataset, file: Any) -> xr.Dataset:
    """Decode neuromodels' attribute and dtype markers; strings become object arrays of str."""
    coord_names = set(ds.coords)
    variables: dict[str, xr.Variable] = {}
    for name, var in ds.variables.items():
        attrs = _decode_attrs(var.attrs, f"{name}.", file)
        marker = attrs.pop(DTYPE_MARKER, None)
        data: Any = var.data
        if var.dtype.kind in "USO":
            data = _text_array(var.values, str(name), file)
            if isinstance(marker, str) and marker.lstrip("<>|=").startswith("U"):
                data = data.astype(marker)
        variables[str(name)] = xr.Variable(var.dims, data, attrs, encoding=var.encoding)
    coords = {k: v for k, v in variables.items() if k in coord_names}
    data_vars = {k: v for k, v in variables.items() if k not in coord_names}
    return xr.Dataset(data_vars, coords=coords, attrs=_decode_attrs(ds.attrs, "", file))


def _decode_gathered_indexes(ds: xr.Dataset) -> xr.Dataset:
    """Rebuild MultiIndex levels stored with CF "compression by gathering" as plain coordinates."""
    for name in list(ds.variables):
        if name not in ds.variables:
            continue
        var = ds.variables[name]
        levels = str(var.attrs.get("compress", "")).split()
        if var.ndim != 1 or not levels:
            continue
        if not all(lv in ds.variables and ds.variables[lv].dims == (lv,) for lv in levels):
            continue
        dim = var.dims[0]
        shape = tuple(ds.sizes[lv] for lv in levels)
        codes = np.asarray(var.values).astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= int(np.prod(shape))):
            continue
        positions = np.unravel_index(codes, shape)
        level_coords = {
            lv: (dim, np.asarray(ds.variables[lv].values)[pos], dict(ds.variables[lv].attrs))
            for lv, pos in zip(levels, positions)
        }
        ds = ds.drop_vars([name, *levels]).assign_coords(level_coords)
    return ds


def _assembly_variable(ds: xr.Dataset, file: Path) -> str:
    candidates = [k for k, v in ds.data_vars.items() if "presentation" in v.dims and "neuroid" in v.dims]
    if len(candidates) == 1:
        return str(candidates[0])
    if not candidates and len(ds.data_vars) == 1:
        name, var = next(iter(ds.data_vars.items()))
        raise DataFormatError(
            file=file,
            field=str(name),
            expected="dims ('presentation', 'neuroid'[, 'time_bin'])",
            found=f"dims {var.dims}",
        )
    raise DataFormatError(
        "an assembly file holds one data variable on presentation x neuroid [x time_bin]; a recording holds "
        "response(time, cell)",
        file=file,
        field="<variables>",
        expected="one assembly variable or a 'response' variable",
        found=f"data variables {sorted(map(str, ds.data_vars))}",
    )


def _to_assembly(ds: xr.Dataset, file: Path) -> xr.DataArray:
    ds = _decode_gathered_indexes(ds)
    name = _assembly_variable(ds, file)
    var_dims = set(ds[name].dims)
    # Files written without a 'coordinates' attribute leave per-dimension metadata as data variables.
    metadata = [k for k, v in ds.data_vars.items() if k != name and set(v.dims) <= var_dims]
    others = [str(k) for k in ds.data_vars if k != name and k not in metadata]
    if others:
        warnings.warn(
            f"{file}: variables {others} do not share the assembly's dimensions and are not read", stacklevel=3
        )
    ds = ds.set_coords(metadata).drop_vars(others)
    foreign = [str(k) for k, v in ds.coords.items() if not set(v.dims) <= var_dims]
    ds = ds.drop_vars(foreign)
    da = ds[name]
    extra_dims = [d for d in da.dims if d not in _ASSEMBLY_DIMS]
    if extra_dims:
        raise DataFormatError(
            file=file, field=name, expected="dims ('presentation', 'neuroid'[, 'time_bin'])", found=f"dims {da.dims}"
        )
    order = tuple(d for d in _ASSEMBLY_DIMS if d in da.dims)
    if da.dims != order:
        da = da.transpose(*order)
    # The variable's attributes (BrainIO's writer) win over global ones (BrainIO's specification).
    attrs = dict(da.attrs)
    attrs.update({k: v for k, v in ds.attrs.items() if k not in attrs})
    da = da.copy(deep=False)
    da.attrs = attrs
    da.name = None if name == _DATAARRAY_VARIABLE else name
    for index_name, index in list(da.indexes.items()):
        if isinstance(index, pd.MultiIndex):
            da = da.reset_index(index_name)
    if "stimulus_id" not in da.coords and "image_id" in da.coords:
        da = da.assign_coords(stimulus_id=da["image_id"].variable.copy())
    return da


def _finish(obj: xr.Dataset | xr.DataArray, path: Path) -> xr.Dataset | xr.DataArray:
    obj.attrs.setdefault("source", str(path))
    return validate(obj, file=path)


def _load_coords(ds: xr.Dataset) -> xr.Dataset:
    """Coordinates in memory (they are small and text needs decoding); data variables stay lazy."""
    return ds.assign_coords({k: v.variable.load() for k, v in ds.coords.items()})


def open_netcdf(path: str | os.PathLike[str], *, lazy: bool = False, **options: Any) -> xr.Dataset | xr.DataArray:
    """Open any netCDF-4 file holding an assembly or a recording, validated.

    Parameters
    ----------
    path : a ``.nc`` file.
    lazy : keep data variables dask-backed (coordinates are read); the file stays open while they are used.

    Returns
    -------
    ``xr.DataArray (presentation, neuroid[, time_bin])`` for an assembly (see :func:`open_brainio`), or the
    recording ``xr.Dataset`` with ``response(time, cell)``.

    Raises
    ------
    DataFormatError
        naming the file for a truncated or corrupt file, or a layout that is neither.
    ConfigError
        for options that do not apply to netCDF (such as ``bin_size``: the file is already binned).
    """
    if options:
        raise ConfigError(
            f"netCDF files are read as stored; option(s) {sorted(options)} do not apply "
            f"(the file {os.fspath(path)} is already binned)"
        )
    p = existing_file(path)
    opened = _open_dataset(p, lazy)
    ds = _decode_variables(_load_coords(opened) if lazy else opened, p)
    result: xr.Dataset | xr.DataArray
    # What the file holds is decided by dimensions, not by variable names: an assembly may well be called
    # 'response', and only a recording has response(time, cell).
    if "response" in ds.data_vars and set(ds["response"].dims) >= {"time", "cell"}:
        for index_name, index in list(ds.indexes.items()):
            if isinstance(index, pd.MultiIndex):
                ds = ds.reset_index(index_name)
        result = ds
    elif features := [k for k, v in ds.data_vars.items() if v.dims[:2] == ("presentation", "feature")]:
        if len(features) != 1:
            opened.close()
            raise DataFormatError(
                file=p,
                field="<variables>",
                expected="one features variable (presentation, feature[, time_step])",
                found=f"{sorted(map(str, features))}",
            )
        da = ds[features[0]]
        attrs = {**ds.attrs, **da.attrs}
        da = da.copy(deep=False)
        da.attrs = attrs
        result = da
    else:
        result = _to_assembly(ds, p)
    if lazy:
        result.set_close(opened.close)  # obj.close() releases the file that the dask arrays read from
    return _finish(result, p)


def open_brainio(path: str | os.PathLike[str], *, lazy: bool = False) -> xr.DataArray:
    """Open a Brain-Score / BrainIO assembly (netCDF) as a plain-coordinate ``xr.DataArray``.

    Returns ``(presentation, neuroid[, time_bin])`` with the file's coordinates as plain coordinates
    (``stimulus_id`` added from legacy ``image_id``), the file's global and variable attributes (``identifier``,
    ``stimulus_set_identifier`` where stored), and ``attrs['source']`` (the path, unless the file records the
    source it was converted from). ``lazy`` keeps the values dask-backed. See the module docstring for the layout.
    """
    p = existing_file(path)
    opened = _open_dataset(p, lazy)
    ds = _decode_variables(_load_coords(opened) if lazy else opened, p)
    if "response" in ds.data_vars and not any("presentation" in v.dims for v in ds.data_vars.values()):
        opened.close()
        raise DataFormatError(
            "this is a recording; use open_netcdf or load",
            file=p,
            field="response",
            expected="an assembly on presentation x neuroid",
            found="a recording response(time, cell)",
        )
    result = _to_assembly(ds, p)
    if lazy:
        result.set_close(opened.close)
    return _finish(result, p)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# writing


def _check_text(values: np.ndarray, field: str, file: Any) -> None:
    flat = values.reshape(-1)
    if values.dtype.kind == "O":
        bad = [v for v in flat.tolist() if not isinstance(v, str)]
        if bad:
            raise DataFormatError(
                file=file,
                field=field,
                expected="an object array of str only",
                found=f"{len(bad)} non-str value(s), e.g. {bad[0]!r} ({type(bad[0]).__name__})",
            )
    if any("\x00" in v for v in flat.tolist()):
        raise DataFormatError(
            "HDF5 would silently cut such strings",
            file=file,
            field=field,
            expected="strings without NUL characters",
            found="a NUL character",
        )


def _netcdf_dataset(ds: xr.Dataset, file: Any) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """A copy of ``ds`` with encoded attributes and markers, and the per-variable netCDF encoding."""
    coord_names = set(ds.coords)
    variables: dict[str, xr.Variable] = {}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if not isinstance(name, str):
            raise DataFormatError(
                file=file, field=repr(name), expected="string variable names", found=type(name).__name__
            )
        attrs = _encode_attrs(var.attrs, f"{name}.", file)
        kind = var.dtype.kind
        if kind in "UO":
            _check_text(np.asarray(var.values), name, file)
            if kind == "U":
                attrs[DTYPE_MARKER] = var.dtype.str
        elif kind in "iuf" and var.ndim and var.size:
            encoding[name] = {"zlib": True, "complevel": 1}
        elif kind not in "biufmM":
            raise DataFormatError(
                file=file, field=name, expected="numeric, bool, datetime or string values", found=f"dtype {var.dtype}"
            )
        variables[name] = xr.Variable(var.dims, var.data, attrs)
    coords = {k: v for k, v in variables.items() if k in coord_names}
    data_vars = {k: v for k, v in variables.items() if k not in coord_names}
    return xr.Dataset(data_vars, coords=coords, attrs=_encode_attrs(ds.attrs, "", file)), encoding


def _to_netcdf(ds: xr.Dataset, path: str | os.PathLike[str], file: Any) -> None:
    encoded, encoding = _netcdf_dataset(ds, file)
    write_netcdf_atomic(encoded, path, engine="netcdf4", format="NETCDF4", encoding=encoding)


def write_brainio(assembly: xr.DataArray, path: str | os.PathLike[str]) -> None:
    """Write an assembly to a BrainIO-compatible netCDF-4 file, atomically.

    ``assembly``: ``(presentation, neuroid[, time_bin])``, validated first (a MultiIndex, as in BrainIO's
    ``DataAssembly``, is reset to plain coordinates before). The data variable keeps the assembly's ``name``
    (``__xarray_dataarray_variable__`` when it has none, as xarray does), so ``xarray.open_dataarray(path)`` and
    ``load(path)`` read it back; attributes are encoded as the module docstring explains.
    """
    if not isinstance(assembly, xr.DataArray):
        raise DataFormatError(file=path, field="<object>", expected="xarray.DataArray", found=type(assembly).__name__)
    multi = [k for k, v in assembly.indexes.items() if isinstance(v, pd.MultiIndex)]
    if multi:
        assembly = assembly.reset_index(multi)
    validate_assembly(assembly, file=assembly.attrs.get("source", path))
    name = assembly.name if assembly.name is not None else _DATAARRAY_VARIABLE
    if not isinstance(name, str) or name in assembly.coords:
        raise DataFormatError(
            file=path,
            field="<name>",
            expected="a string name different from every coordinate",
            found=repr(assembly.name),
        )
    ds = assembly.to_dataset(name=name, promote_attrs=False)
    ds.attrs = {k: assembly.attrs[k] for k in _GLOBAL_ASSEMBLY_ATTRS if k in assembly.attrs}
    _to_netcdf(ds, path, path)


def write_netcdf(obj: xr.Dataset | xr.DataArray, path: str | os.PathLike[str]) -> None:
    """Write a validated assembly (:func:`write_brainio`), recording or model features atomically.

    Features ``(presentation, feature[, time_step])`` are stored as the variable ``features`` with the layer
    name in the attrs, the layout ``neuromodels score --features`` and :func:`open_netcdf` read.

    Recordings keep every data variable, coordinate and attribute; dask-backed variables (a lazily opened
    stimulus) are streamed to the file chunk by chunk.
    """
    if isinstance(obj, xr.DataArray) and "feature" in obj.dims:
        validate_features(obj, file=obj.attrs.get("source", path))
        layer = obj.attrs.get("layer", obj["layer"].item() if "layer" in obj.coords else None)
        features = obj.drop_vars("layer", errors="ignore").assign_attrs(layer=str(layer))
        _to_netcdf(features.to_dataset(name="features", promote_attrs=True), path, path)
        return
    if isinstance(obj, xr.DataArray):
        write_brainio(obj, path)
        return
    if not isinstance(obj, xr.Dataset):
        raise DataFormatError(
            file=path, field="<object>", expected="xarray.Dataset or xarray.DataArray", found=type(obj).__name__
        )
    validate_recording(obj, file=obj.attrs.get("source", path))
    _to_netcdf(obj, path, path)


# --------------------------------------------------------------------------------------------------------------
# stimulus sets


def _as_text_column(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


class StimulusSet:
    """A BrainIO stimulus set: a table of stimuli and the files they point to (in a zip or a folder).

    Attributes
    ----------
    table : ``pandas.DataFrame``, one row per stimulus, with a unique string ``stimulus_id`` column (made from a
        legacy ``image_id`` column when absent; ``image_id`` is kept), a ``filename`` column (path of the file in
        the zip or folder) and any metadata columns.
    identifier : the stimulus set's identifier, or ``None``.
    zip_path : the zip archive holding the files, or ``None`` when they are in ``folder``.
    folder : the folder holding the files when there is no zip.

    Files are read on demand (:meth:`image_bytes`, :meth:`image`, :meth:`images`); nothing is unpacked.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        zip_path: str | os.PathLike[str] | None = None,
        folder: str | os.PathLike[str] | None = None,
        identifier: str | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        where = source if source is not None else (zip_path if zip_path is not None else folder)
        if (zip_path is None) == (folder is None):
            raise ConfigError("a StimulusSet needs exactly one of zip_path (a zip archive) or folder")
        table = pd.DataFrame(table).reset_index(drop=True)
        if "stimulus_id" not in table.columns:
            if "image_id" not in table.columns:
                raise DataFormatError(
                    file=where,
                    field="stimulus_id",
                    expected="a 'stimulus_id' (or legacy 'image_id') column",
                    found=f"columns {list(map(str, table.columns))}",
                )
            table.insert(0, "stimulus_id", pd.Series(_as_text_column(table["image_id"]), dtype="str"))
        if "filename" not in table.columns:
            raise DataFormatError(
                file=where,
                field="filename",
                expected="a 'filename' column (path of each file in the zip)",
                found=f"columns {list(map(str, table.columns))}",
            )
        if table["stimulus_id"].isna().any() or table["filename"].isna().any():
            column = "stimulus_id" if table["stimulus_id"].isna().any() else "filename"
            raise DataFormatError(
                file=where,
                field=column,
                expected="a value in every row",
                found=f"{int(table[column].isna().sum())} empty value(s)",
            )
        ids = pd.Index(table["stimulus_id"])
        if not ids.is_unique:
            raise DataFormatError(
                file=where,
                field="stimulus_id",
                expected="unique stimulus ids",
                found=f"duplicates {ids[ids.duplicated()].unique()[:5].tolist()}",
            )
        self.table = table
        self.identifier = identifier
        self.zip_path = None if zip_path is None else Path(zip_path)
        self.folder = None if folder is None else Path(folder)
        self._row = {str(s): i for i, s in enumerate(table["stimulus_id"])}
        self._check_files()

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_zip(
        cls,
        zip_path: str | os.PathLike[str],
        *,
        identifier: str | None = None,
        metadata: pd.DataFrame | None = None,
    ) -> StimulusSet:
        """A stimulus set of every file in ``zip_path``: ``stimulus_id`` = file name without extension.

        ``metadata`` (optional) has a ``filename`` column and is merged in by file name.
        """
        zp = existing_file(zip_path)
        names = _zip_names(zp)
        files = sorted(n for n in names if not n.endswith("/"))
        stems = [Path(n).stem for n in files]
        table = pd.DataFrame({"stimulus_id": pd.Series(stems, dtype="str"), "filename": pd.Series(files, dtype="str")})
        if metadata is not None:
            table = table.merge(metadata, on="filename", how="left")
        return cls(table, zip_path=zp, identifier=identifier, source=zp)

    # -- access ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        where = self.zip_path if self.zip_path is not None else self.folder
        return f"StimulusSet({self.identifier!r}, {len(self)} stimuli, files in {where})"

    @property
    def stimulus_ids(self) -> list[str]:
        return [str(s) for s in self.table["stimulus_id"]]

    def filename(self, stimulus_id: str) -> str:
        """Path of the stimulus' file inside the zip (or folder)."""
        try:
            row = self._row[str(stimulus_id)]
        except KeyError:
            raise DataFormatError(
                file=self.zip_path or self.folder,
                field="stimulus_id",
                expected="a stimulus id of this set",
                found=repr(stimulus_id),
            ) from None
        return str(self.table["filename"].iloc[row])

    def image_bytes(self, stimulus_id: str) -> bytes:
        """The stored bytes of one stimulus file."""
        name = self.filename(stimulus_id)
        if self.zip_path is not None:
            with zipfile.ZipFile(self.zip_path) as archive:
                return archive.read(name)
        assert self.folder is not None
        return (self.folder / name).read_bytes()

    def image(self, stimulus_id: str) -> np.ndarray:
        """One image as ``(y, x)`` (grey) or ``(y, x, channel)`` ``uint8`` (Pillow's decoding, no conversion)."""
        return _decode_image(self.image_bytes(stimulus_id), self.filename(stimulus_id), self.zip_path or self.folder)

    def images(self, stimulus_ids: Sequence[str] | None = None) -> xr.DataArray:
        """Images as ``xr.DataArray(stimulus, y, x[, channel])`` ``uint8`` with a ``stimulus_id`` coordinate.

        All images must have the same shape (:class:`DataFormatError` names the first that differs).
        """
        ids = self.stimulus_ids if stimulus_ids is None else [str(s) for s in stimulus_ids]
        where = self.zip_path or self.folder
        arrays: list[np.ndarray] = []
        archive = zipfile.ZipFile(self.zip_path) if self.zip_path is not None else None
        try:
            for sid in ids:
                name = self.filename(sid)
                if archive is not None:
                    raw = archive.read(name)
                else:
                    assert self.folder is not None
                    raw = (self.folder / name).read_bytes()
                array = _decode_image(raw, name, where)
                if arrays and array.shape != arrays[0].shape:
                    raise DataFormatError(
                        file=where,
                        field=name,
                        expected=f"image shape {arrays[0].shape} like {ids[0]!r}",
                        found=f"shape {array.shape}",
                    )
                arrays.append(array)
        finally:
            if archive is not None:
                archive.close()
        if not arrays:
            raise DataFormatError(file=where, field="stimulus_id", expected="at least one stimulus", found="none")
        stack = np.stack(arrays)
        dims = ("stimulus", "y", "x") + (("channel",) if stack.ndim == 4 else ())
        return xr.DataArray(
            stack,
            dims=dims,
            coords={"stimulus_id": ("stimulus", np.asarray(ids, dtype=object))},
            attrs={"source": str(where), **({"stimulus_set_identifier": self.identifier} if self.identifier else {})},
        )

    # -- checks ------------------------------------------------------------------------------------------------

    def _check_files(self) -> None:
        names = [str(n) for n in self.table["filename"]]
        if self.zip_path is not None:
            present = set(_zip_names(existing_file(self.zip_path)))
            missing = [n for n in names if n not in present]
            where: Path = self.zip_path
        else:
            assert self.folder is not None
            if not self.folder.is_dir():
                raise DataFormatError(
                    file=self.folder, field="<path>", expected="a folder of stimulus files", found="no such folder"
                )
            missing = [n for n in names if not (self.folder / n).is_file()]
            where = self.folder
        if missing:
            raise DataFormatError(
                file=where,
                field="filename",
                expected="a file for every row of the table",
                found=f"{len(missing)} missing, e.g. {missing[:5]}",
            )


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise DataFormatError(
            file=path, field="<file>", expected="a readable zip archive", found=f"{type(err).__name__}: {err}"
        ) from err


def _decode_image(raw: bytes, name: str, where: Any) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataFormatError(
            file=where, field=name, expected="an image Pillow can read", found=f"{type(err).__name__}: {err}"
        ) from err


def open_stimulus_set(
    csv_path: str | os.PathLike[str],
    zip_path: str | os.PathLike[str] | None = None,
    *,
    identifier: str | None = None,
) -> StimulusSet:
    """Open a BrainIO stimulus set: the CSV table and the zip of its files.

    ``zip_path`` defaults to the CSV's name with ``.zip`` when that exists, else the files are looked up in the
    CSV's folder (where BrainIO unpacks them). ``stimulus_id``, legacy ``image_id`` and ``filename`` are read as
    strings; other columns get pandas' CSV type inference, as in BrainIO's own loader. ``identifier`` defaults to
    the CSV's file name without extension (BrainIO's catalog, not the CSV, holds the real identifier).
    """
    csv = existing_file(csv_path)
    text_columns = {c: str for c in ("stimulus_id", "image_id", "filename")}
    try:
        table = pd.read_csv(csv, dtype=text_columns, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise DataFormatError(
            file=csv, field="<file>", expected="a CSV table with a header row", found=f"{type(err).__name__}: {err}"
        ) from err
    if zip_path is None:
        sibling = csv.with_suffix(".zip")
        if sibling.is_file():
            zip_path = sibling
    ident = identifier if identifier is not None else csv.stem
    if zip_path is not None:
        return StimulusSet(table, zip_path=existing_file(zip_path), identifier=ident, source=csv)
    return StimulusSet(table, folder=csv.parent, identifier=ident, source=csv)


def write_stimulus_set(
    stimulus_set: StimulusSet,
    csv_path: str | os.PathLike[str],
    zip_path: str | os.PathLike[str],
) -> None:
    """Write ``stimulus_set`` as a BrainIO CSV table and zip archive, each atomically.

    Every file is copied byte for byte under its ``filename`` (compressed members keep their compression;
    already-compressed media such as JPEG/PNG are stored). The CSV holds the table as is, without index.
    """
    if not isinstance(stimulus_set, StimulusSet):
        raise DataFormatError(
            file=csv_path, field="<object>", expected="a StimulusSet", found=type(stimulus_set).__name__
        )
    names = [str(n) for n in stimulus_set.table["filename"]]
    with atomic_path(zip_path, suffix=".zip") as tmp_zip:
        source = zipfile.ZipFile(stimulus_set.zip_path) if stimulus_set.zip_path is not None else None
        try:
            with zipfile.ZipFile(tmp_zip, "w") as target:
                for name in dict.fromkeys(names):
                    if source is not None:
                        info = source.getinfo(name)
                        with source.open(info) as src, target.open(_zip_info(name, info.compress_type), "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    else:
                        assert stimulus_set.folder is not None
                        stored = Path(name).suffix.lower() in _STORED_SUFFIXES
                        info = _zip_info(name, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
                        with open(stimulus_set.folder / name, "rb") as src, target.open(info, "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            if source is not None:
                source.close()
        with atomic_path(csv_path, suffix=".csv") as tmp_csv:
            stimulus_set.table.to_csv(tmp_csv, index=False)


def _zip_info(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed date: the same set gives the same zip
    info.compress_type = compress_type
    return info
