"""Loading weights into pydetectron models, from any file users bring, without running code from it.

`load_weights(model, path_or_state_dict)` detects the format (Detectron `.pkl` models and
Caffe ImageNet bodies, torchvision ImageNet and detection state dicts, our checkpoints),
reads pickles with a restricted unpickler and torch files with `weights_only=True`,
checks shapes and returns a `LoadReport` of what it loaded, skipped and left unused.
`resolve_weights(path_or_url)` turns a config's path or URL into a local file (cached
downloads with checksums). `load_initial_weights` applies the training flags and config keys.
"""

from .detectron_names import DetectronNames, detectron_names, model_to_detectron_blobs
from .download import cache_dir, cache_path, resolve_weights
from .errors import WeightsDownloadError, WeightsError, WeightsNotFoundError
from .initial import WeightsSource, initial_weights, load_initial_weights
from .loader import load_weights
from .report import LoadReport
from .safe_pickle import dumps_detectron_pickle, load_pickle

__all__ = [
    "DetectronNames",
    "LoadReport",
    "WeightsDownloadError",
    "WeightsError",
    "WeightsNotFoundError",
    "WeightsSource",
    "cache_dir",
    "cache_path",
    "detectron_names",
    "dumps_detectron_pickle",
    "initial_weights",
    "load_initial_weights",
    "load_pickle",
    "load_weights",
    "model_to_detectron_blobs",
    "resolve_weights",
]
