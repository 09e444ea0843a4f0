"""The authors' released models, by name: where their files are, what they hold, under which terms.

The URLs are those of the authors' `download.sh` (clovaai/stargan-v2, yunjey/stargan) with Dropbox's
`?dl=0` (a web page) changed to `?dl=1` (the file itself). Sizes are what the networks' parameters take
as float32, which is what the files hold (the v1 zips barely compress them); they are for listing and
for the free-space check, never to judge a download: the converter's checks do that.
"""

from __future__ import annotations

import dataclasses
import difflib
from types import MappingProxyType

V2_LICENSE = "CC BY-NC 4.0, NAVER Corp."
V2_TERMS = ("The weights of StarGAN v2 are licensed by NAVER Corp. under CC BY-NC 4.0 "
            "(https://github.com/clovaai/stargan-v2#license): non-commercial use, with attribution.")
V1_LICENSE = "the authors' release terms (yunjey/stargan, MIT)"
V1_TERMS = ("The weights of StarGAN come with the authors' release terms (yunjey/stargan, MIT): "
            "https://github.com/yunjey/stargan/blob/master/LICENSE.")
MB = 10**6


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of the authors' release: its name in their download.sh, its URL and its expected size."""

    name: str
    url: str
    role: str  # nets_ema (v2 G, F, E), fan (wing.ckpt), landmarks_mean (celeba_lm_mean.npz), zip (v1)
    approx_bytes: int


@dataclasses.dataclass(frozen=True)
class Preset:
    """A released model: its files, the config its networks need, and their terms."""

    name: str
    family: str  # "v2" or "v1"
    description: str
    config_name: str  # a config preset (configs/*.yaml) describing the networks
    files: tuple[RemoteFile, ...]
    license: str
    terms: str
    overrides: MappingProxyType = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def config(self):
        """The Config the authors' files are converted with."""
        from stargan_keras.families import load_config

        return load_config(self.config_name).replace(**self.overrides)

    def file(self, role: str) -> RemoteFile | None:
        return next((f for f in self.files if f.role == role), None)

    @property
    def approx_bytes(self) -> int:
        return sum(f.approx_bytes for f in self.files)

    def describe(self) -> dict:
        """Resolution and labels, read off the config (what `presets` lists)."""
        from stargan_keras import families

        config = self.config()
        family = families.of_config(config)
        return {"resolution": family.image_size(config), "labels": family.label_names(config)}


def _v2_ema(url_id: str, params: int) -> RemoteFile:
    return RemoteFile("100000_nets_ema.ckpt", f"https://www.dropbox.com/s/{url_id}/100000_nets_ema.ckpt?dl=1",
                      "nets_ema", params * 4)


FAN_PARAMS = 6_348_579  # face.fan.build_fan()
PRESETS: dict[str, Preset] = {
    preset.name: preset for preset in (
        Preset("stargan_v2_afhq", "v2", "StarGAN v2 on AFHQ: animal faces, 100,000 iterations", "afhq",
               (_v2_ema("etwm810v25h42sn", 33_892_995 + 3_259_072 + 20_949_760),), V2_LICENSE, V2_TERMS),
        Preset("stargan_v2_celeba_hq", "v2", "StarGAN v2 on CelebA-HQ: human faces, 100,000 iterations, with "
               "the face-landmark network (FAN) of its masks and the mean landmarks for alignment", "celeba_hq",
               (_v2_ema("96fmei6c93o8b8t", 43_467_395 + 2_438_272 + 20_916_928),
                RemoteFile("wing.ckpt", "https://www.dropbox.com/s/tjxpypwpt38926e/wing.ckpt?dl=1", "fan",
                           FAN_PARAMS * 4),
                RemoteFile("celeba_lm_mean.npz", "https://www.dropbox.com/s/91fth49gyb7xksk/celeba_lm_mean.npz?dl=1",
                           "landmarks_mean", 2_000)),
               V2_LICENSE, V2_TERMS),
        Preset("stargan_celeba_128", "v1", "StarGAN (v1) on CelebA at 128 px, five attributes, 200,000 "
               "iterations", "v1_celeba",
               (RemoteFile("celeba-128x128-5attrs.zip",
                           "https://www.dropbox.com/s/7e966qq0nlxwte4/celeba-128x128-5attrs.zip?dl=1", "zip",
                           (8_430_528 + 44_762_048) * 4),),
               V1_LICENSE, V1_TERMS, MappingProxyType({"image_size": 128})),
        Preset("stargan_celeba_256", "v1", "StarGAN (v1) on CelebA at 256 px, five attributes, 200,000 "
               "iterations", "v1_celeba",
               (RemoteFile("celeba-256x256-5attrs.zip",
                           "https://www.dropbox.com/s/zdq6roqf63m0v5f/celeba-256x256-5attrs.zip?dl=1", "zip",
                           (8_430_528 + 44_884_928) * 4),),
               V1_LICENSE, V1_TERMS, MappingProxyType({"image_size": 256})),
    )
}


def names() -> list[str]:
    return list(PRESETS)


def unknown_name_message(name: str, what: str = "a model directory nor a preset") -> str:
    close = difflib.get_close_matches(name, names(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"{name!r} is not {what}{hint}; the presets are {', '.join(names())} "
            "(python -m stargan_keras presets lists them).")
