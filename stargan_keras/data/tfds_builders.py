"""TFDS builders for the authors' AFHQ, AFHQ v2 and CelebA-HQ zips (`tfds.load("afhq")` works).

Each zip holds the folder-of-domain-folders layout (train/<domain>/, val/<domain>/ or,
for AFHQ v2, test/<domain>/). Training reads the extracted folder directly with
random access (see `prepare_authors_dataset`), so it never needs a second copy in
TFRecords; the builders exist for TFDS users and share the download, manual-zip and
extraction code with training. The Dropbox links need `dl=1` to serve the file itself.
"""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import tensorflow_datasets as tfds
from etils import epath

from stargan_keras.data.domain_images import DatasetError, DomainImages
from stargan_keras.data.folders import find_dataset_root, load_folder
from stargan_keras.core.safe_files import UnsafeFileError, check_zip

CITATION = """@inproceedings{choi2020starganv2,
  title={StarGAN v2: Diverse Image Synthesis for Multiple Domains},
  author={Yunjey Choi and Youngjung Uh and Jaejun Yoo and Jung-Woo Ha},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition},
  year={2020}
}"""
HOMEPAGE = "https://github.com/clovaai/stargan-v2"


class DatasetDownloadError(DatasetError):
    """The zip could not be fetched; the message says which URL to fetch by hand and where to put it."""


@dataclass(frozen=True)
class AuthorsZip:
    """One of the authors' dataset zips."""

    name: str
    page_url: str  # as published (dl=0 shows a Dropbox web page)
    domains: tuple[str, ...]
    description: str

    @property
    def url(self) -> str:
        return self.page_url.replace("dl=0", "dl=1")

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"

    def manual_instructions(self, data_dir: str = "<data_dir>") -> str:
        return (f"Download {self.url} (the authors' {self.name}.zip, several GB) and save it as "
                f"{manual_dir(data_dir)}/{self.zip_name}; or unzip it yourself so that "
                f"{Path(data_dir) / self.name}/train/<domain>/ exists ({', '.join(self.domains)}).")


def manual_dir(data_dir: str | Path) -> Path:
    """Where TFDS looks for hand-fetched files by default."""
    return Path(data_dir) / "downloads" / "manual"


AUTHORS_ZIPS = {
    "afhq": AuthorsZip("afhq", "https://www.dropbox.com/s/t9l9o3vsx2jai3z/afhq.zip?dl=0", ("cat", "dog", "wild"),
                       "Animal Faces-HQ (AFHQ): 15,000 512 px animal faces in three domains."),
    "afhq_v2": AuthorsZip("afhq_v2", "https://www.dropbox.com/s/vkzjokiwof5h8w6/afhq_v2.zip?dl=0",
                          ("cat", "dog", "wild"),
                          "AFHQ v2: AFHQ re-processed with better resampling; its test/ split is read as val."),
    "celeba_hq": AuthorsZip("celeba_hq", "https://www.dropbox.com/s/f7pvjij2xlpff59/celeba_hq.zip?dl=0",
                            ("female", "male"), "CelebA-HQ faces split by gender, as used by StarGAN v2."),
}


def _manual_zip(spec: AuthorsZip, dl_manager) -> epath.Path | None:
    """The hand-fetched zip in the manual dir, if there is one (TFDS raises when the dir is absent)."""
    try:
        folder = dl_manager.manual_dir
    except (AssertionError, ValueError):
        return None
    candidate = epath.Path(folder) / spec.zip_name
    return candidate if candidate.exists() else None


def check_reachable(spec: AuthorsZip, data_dir: str, timeout: float = 10.0) -> None:
    """Fail in seconds, with the manual route, when the host cannot be reached.

    TFDS retries unreachable hosts with backoff for minutes before giving up.
    """
    url = urllib.parse.urlsplit(spec.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise DatasetDownloadError(
            f"cannot reach {url.hostname}:{port} to download {spec.name} from {spec.url} ({err}). "
            f"{spec.manual_instructions(data_dir)} Then run again.") from None


def extracted_root(spec: AuthorsZip, dl_manager, data_dir: str, check_network: bool = False) -> Path:
    """Extract the manual zip, or download and extract the authors' zip; return the folder with train/."""
    manual_zip = _manual_zip(spec, dl_manager)
    if manual_zip is not None:
        archive, source = manual_zip, str(manual_zip)
    else:
        if check_network:
            check_reachable(spec, data_dir)
        try:
            archive = dl_manager.download(spec.url)
        except Exception as err:  # network, proxy, disk: all end with the same manual route
            raise DatasetDownloadError(
                f"could not download {spec.name} from {spec.url} ({type(err).__name__}: {err}). "
                f"{spec.manual_instructions(data_dir)} Then run again.") from err
        source = spec.url
    if Path(archive).is_dir():  # TFDS's test doubles hand over the extracted folder
        extracted = archive
    else:
        try:
            check_zip(Path(archive))  # its member count, sizes and ratios, before anything is unpacked
        except UnsafeFileError as err:
            raise DatasetError(str(err)) from None
        extracted = dl_manager.extract(
            tfds.download.Resource(path=archive, extract_method=tfds.download.ExtractMethod.ZIP))
    root = find_dataset_root(Path(extracted))
    if root is None:
        raise DatasetError(f"{source} (extracted to {extracted}) has no train/<domain>/ folders; is it the "
                           f"authors' {spec.zip_name}? {spec.manual_instructions(data_dir)}")
    return root


def prepare_authors_dataset(name: str, data_dir: str | Path) -> Path:
    """The dataset's folder: already extracted in data_dir, else from the manual zip or a download."""
    spec = AUTHORS_ZIPS[name]
    data_dir = Path(data_dir).expanduser()
    local = find_dataset_root(data_dir / name, depth=1)
    if local is not None:
        return local
    dl_manager = tfds.download.DownloadManager(
        download_dir=data_dir / "downloads", manual_dir=manual_dir(data_dir),
        manual_dir_instructions=spec.manual_instructions(str(data_dir)), dataset_name=name)
    return extracted_root(spec, dl_manager, str(data_dir), check_network=True)


class _AuthorsZipBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images with ClassLabel domains, splits train and val, from one of the authors' zips."""

    SPEC: AuthorsZip
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The authors' release, undecodable files skipped."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.SPEC.description,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=list(self.SPEC.domains)),
            }),
            supervised_keys=("image", "label"),
            homepage=HOMEPAGE,
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        data_dir_root = str(epath.Path(self.data_dir).parent.parent)  # <data_dir>/<name>/<version>
        root = extracted_root(self.SPEC, dl_manager, data_dir_root)
        data = load_folder(root, name=self.SPEC.name, expected_domains=list(self.SPEC.domains))
        return {split: self._generate_examples(data, split) for split in ("train", "val")}

    def _generate_examples(self, data: DomainImages, split: str):
        for label, source in zip(data.domain_names, data.splits[split]):
            for index, path in enumerate(source.paths):
                # Converted files (CMYK...) go in as RGB PNG bytes; the others as the original file.
                image = source.inline.get(index, path)
                yield f"{label}/{index:06d}_{Path(path).name}", {"image": image, "label": label}


class Afhq(_AuthorsZipBuilder):
    __doc__ = AUTHORS_ZIPS["afhq"].description
    SPEC = AUTHORS_ZIPS["afhq"]
    MANUAL_DOWNLOAD_INSTRUCTIONS = SPEC.manual_instructions()


class AfhqV2(_AuthorsZipBuilder):
    __doc__ = AUTHORS_ZIPS["afhq_v2"].description
    SPEC = AUTHORS_ZIPS["afhq_v2"]
    MANUAL_DOWNLOAD_INSTRUCTIONS = SPEC.manual_instructions()


class CelebaHq(_AuthorsZipBuilder):
    __doc__ = AUTHORS_ZIPS["celeba_hq"].description
    SPEC = AUTHORS_ZIPS["celeba_hq"]
    MANUAL_DOWNLOAD_INSTRUCTIONS = SPEC.manual_instructions()


BUILDERS = {"afhq": Afhq, "afhq_v2": AfhqV2, "celeba_hq": CelebaHq}
