"""The authors' trained models by name: `stargan_keras.load("stargan_v2_afhq")`, `--checkpoint stargan_celeba_128`.

`catalog` lists the four releases (URLs, sizes, configs, terms); `download` fetches a file
(progress, time-outs, retries, resume); `archive` reads the v1 zips within limits; `cache`
converts the files once, with the project's converters, into a model directory under
$STARGAN_KERAS_HOME (default ~/.cache/stargan_keras), and `resolve_model` is what the
commands call on a model argument; `command` is `python -m stargan_keras presets`. No
TensorFlow is imported until a model is converted.
"""

from stargan_keras.presets.cache import PresetError, cache_root, ensure, is_ready, model_dir, resolve_model
from stargan_keras.presets.catalog import PRESETS, Preset, RemoteFile, names

__all__ = ["PRESETS", "Preset", "PresetError", "RemoteFile", "cache_root", "ensure", "is_ready", "model_dir",
           "names", "resolve_model"]

