"""The TFDS builders for the authors' zips (DatasetBuilderTestCase on tiny generated dummy data),
and how training finds those datasets: extracted in data_dir, a hand-fetched zip, or a clear error offline."""

import shutil
import socket
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stargan_keras.v2.config import Config
from stargan_keras.data import DatasetError, load_dataset
from stargan_keras.data import tfds_builders
from stargan_keras.data.tfds_builders import AUTHORS_ZIPS, DatasetDownloadError, prepare_authors_dataset
from tests.harness.data import coded_image, write_image


def make_split_tree(root: Path, domains, val_name="val", train_per_domain=2, ext="jpg") -> Path:
    """root/train/<domain>/ and root/<val_name>/<domain>/ of tiny coded images."""
    for d, domain in enumerate(domains):
        for i in range(train_per_domain):
            write_image(root / "train" / domain / f"{i}.{ext}", coded_image(d % 3, i, 8))
        write_image(root / val_name / domain / f"v.{ext}", coded_image(d % 3, 9, 8))
    return root


def zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent))
    return zip_path


class _GeneratedDummyData:
    """Mixin for DatasetBuilderTestCase: builds the dummy data in a temporary folder before TFDS looks for it."""

    SKIP_CHECKSUMS = True  # the authors publish no checksums, and nothing is downloaded here

    @classmethod
    def make_dummy_data(cls, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls._dummy = Path(tempfile.mkdtemp(prefix=f"{cls.__name__}_"))
        cls.make_dummy_data(cls._dummy)
        cls.EXAMPLE_DIR = str(cls._dummy)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls._dummy, ignore_errors=True)


class AfhqDownloadTest(_GeneratedDummyData, tfds.testing.DatasetBuilderTestCase):
    """The download route (mocked): the zip's afhq/ folder, with a CMYK file and a corrupt one."""

    DATASET_CLASS = tfds_builders.Afhq
    SPLITS = {"train": 7, "val": 3}

    @classmethod
    def make_dummy_data(cls, folder):
        tree = make_split_tree(folder / "afhq", ["cat", "dog", "wild"])
        write_image(tree / "train" / "dog" / "cmyk.jpg", coded_image(1, 5, 8), mode="CMYK")
        (tree / "train" / "wild" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")


class AfhqV2Test(_GeneratedDummyData, tfds.testing.DatasetBuilderTestCase):
    """AFHQ v2 ships train/ and test/ at the top of the zip: test/ becomes val."""

    DATASET_CLASS = tfds_builders.AfhqV2
    SPLITS = {"train": 6, "val": 3}

    @classmethod
    def make_dummy_data(cls, folder):
        make_split_tree(folder, ["cat", "dog", "wild"], val_name="test", ext="png")


class CelebaHqManualZipTest(_GeneratedDummyData, tfds.testing.DatasetBuilderTestCase):
    """The manual route: celeba_hq.zip in the manual dir is extracted (for real) and read."""

    DATASET_CLASS = tfds_builders.CelebaHq
    SPLITS = {"train": 6, "val": 2}

    @classmethod
    def make_dummy_data(cls, folder):
        staging = Path(tempfile.mkdtemp())
        make_split_tree(staging / "celeba_hq", ["female", "male"], train_per_domain=3)
        zip_folder(staging / "celeba_hq", folder / "celeba_hq.zip")
        shutil.rmtree(staging)


def test_builder_features_and_manual_instructions(tmp_path):
    for name, builder in tfds_builders.BUILDERS.items():
        spec = AUTHORS_ZIPS[name]
        assert builder.name == name
        assert spec.url.endswith("dl=1") and spec.url.replace("dl=1", "dl=0") == spec.page_url
        assert spec.url in builder.MANUAL_DOWNLOAD_INSTRUCTIONS and spec.zip_name in builder.MANUAL_DOWNLOAD_INSTRUCTIONS
    info = tfds_builders.Afhq(data_dir=str(tmp_path / "afhq")).info
    assert info.features["label"].names == ["cat", "dog", "wild"]
    assert tfds_builders.CelebaHq(data_dir=str(tmp_path / "celeba_hq")).info.features["label"].names == ["female", "male"]


@pytest.fixture
def offline(monkeypatch):
    """No host can be reached (and any attempt to download is a test failure)."""

    def refuse(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                        lambda *a, **k: pytest.fail("tried to download"))


def test_extracted_dataset_in_data_dir_is_used_as_is(tmp_path, offline):
    make_split_tree(tmp_path / "afhq", ["cat", "dog", "wild"])
    assert prepare_authors_dataset("afhq", tmp_path) == tmp_path / "afhq"
    config = Config().replace(dataset="afhq", data_dir=str(tmp_path), img_size=16, num_domains=3)
    data = load_dataset(config)
    assert data.name == "afhq" and data.domain_names == ["cat", "dog", "wild"]
    assert data.counts("train") == [2, 2, 2] and data.counts("val") == [1, 1, 1]


def test_extracted_dataset_with_other_domains_fails(tmp_path, offline):
    make_split_tree(tmp_path / "celeba_hq", ["men", "women"])
    with pytest.raises(DatasetError, match=r"has domains \['men', 'women'\], expected \['female', 'male'\]"):
        load_dataset(Config().replace(dataset="celeba_hq", data_dir=str(tmp_path)))


def test_hand_fetched_zip_in_the_manual_dir(tmp_path, offline):
    staging = make_split_tree(tmp_path / "staging" / "afhq_v2", ["cat", "dog", "wild"], val_name="test", ext="png")
    manual = tmp_path / "data" / "downloads" / "manual"
    manual.mkdir(parents=True)
    zip_folder(staging, manual / "afhq_v2.zip")
    data = load_dataset(Config().replace(dataset="afhq_v2", data_dir=str(tmp_path / "data"), num_domains=3))
    assert data.counts("train") == [2, 2, 2] and data.counts("val") == [1, 1, 1]
    assert Path(data.splits["train"][0].paths[0]).is_relative_to(tmp_path / "data" / "downloads")
    again = load_dataset(Config().replace(dataset="afhq_v2", data_dir=str(tmp_path / "data"), num_domains=3))
    assert again.splits["train"][0].paths == data.splits["train"][0].paths


def test_offline_error_says_which_url_to_fetch_and_where_to_put_it(tmp_path, offline):
    with pytest.raises(DatasetDownloadError) as err:
        prepare_authors_dataset("celeba_hq", tmp_path)
    message = str(err.value)
    assert "https://www.dropbox.com/s/f7pvjij2xlpff59/celeba_hq.zip?dl=1" in message
    assert str(tmp_path / "downloads" / "manual" / "celeba_hq.zip") in message
    assert str(tmp_path / "celeba_hq") + "/train/<domain>/" in message


def test_failed_download_error_says_which_url_to_fetch(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(tfds_builders, "check_reachable", lambda spec, data_dir: None)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", broken)
    with pytest.raises(DatasetDownloadError, match="connection reset by peer") as err:
        prepare_authors_dataset("afhq", tmp_path)
    assert AUTHORS_ZIPS["afhq"].url in str(err.value)
    assert str(tmp_path / "downloads" / "manual" / "afhq.zip") in str(err.value)


def test_zip_without_the_layout_is_rejected(tmp_path, offline):
    manual = tmp_path / "downloads" / "manual"
    (tmp_path / "junk" / "photos").mkdir(parents=True)
    write_image(tmp_path / "junk" / "photos" / "x.png", np.zeros((4, 4, 3), np.uint8))
    manual.mkdir(parents=True)
    zip_folder(tmp_path / "junk", manual / "afhq.zip")
    with pytest.raises(DatasetError, match="has no train/<domain>/ folders"):
        prepare_authors_dataset("afhq", tmp_path)
