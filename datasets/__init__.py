"""Data layer: recordings in many formats -> validated xarray (see docs/data-model.md).

>>> from neuromodels import datasets as nd
>>> rec = nd.load("sample:retina")          # xr.Dataset: stimulus(time, y, x), response(time, cell), trials
>>> nd.validate(rec)                         # DataFormatError naming file/field if it does not fit the model
>>> asm = nd.load("recording.nwb", bin_size=0.01)
>>> asm = nd.assembly_from_arrays(raw, image_ids, dims=("neuroid", "stimulus", "repeat"))  # your own arrays

Everything here is importable without torch; format back ends (pynwb, neo, h5py) load on first use.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes
from neuromodels.datasets._load import FORMATS, detect_format, load
from neuromodels.datasets._validate import validate, validate_assembly, validate_features, validate_recording
from neuromodels.datasets.binning import bin_spike_times

# name -> module (relative to this package) that defines it; imported on first access.
_LAZY = {
    "open_retina_hdf5": "formats.retina_hdf5",
    "write_retina_hdf5": "formats.retina_hdf5",
    "open_openretina": "formats.openretina",
    "write_openretina": "formats.openretina",
    "open_nwb": "formats.nwb",
    "open_neo": "formats.neo_io",
    "open_netcdf": "formats.brainio",
    "open_brainio": "formats.brainio",
    "write_brainio": "formats.brainio",
    "write_netcdf": "formats.brainio",
    "StimulusSet": "formats.brainio",
    "open_stimulus_set": "formats.brainio",
    "write_stimulus_set": "formats.brainio",
    "open_spike_trials": "formats.spike_trials",
    "open_spike_time_matrix": "formats.spike_trials",
    "spike_trials_to_assembly": "formats.spike_trials",
    "sample": "samples",
    "sample_names": "samples",
    "load_mnist": "images",
    "load_digits": "images",
    "load_image_folder": "images",
    "ImageDataset": "images",
    "load_points": "generative",
    "make_spiral": "generative",
    "make_circle": "generative",
    "make_mog": "generative",
    "ImageFolderDataset": "images",
    "describe": "inspect",
    "split": "recording",
    "recording_from_counts": "recording",
    "assembly_from_arrays": "recording",
    "recording_from_arrays": "recording",
}

__all__ = [
    "FORMATS",
    "detect_format",
    "load",
    "validate",
    "validate_assembly",
    "validate_features",
    "validate_recording",
    "bin_spike_times",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
