"""The training session's callbacks (`stargan_keras.core.session.make_callbacks`) as the config asks for them."""

from types import SimpleNamespace

import pytest

from stargan_keras.core import callbacks as cb
from stargan_keras.core.config import ConfigError
from stargan_keras.core.run_dir import RunDir
from stargan_keras.core.session import make_callbacks


@pytest.mark.parametrize("every", [0, 1, 3])
def test_sample_every_0_draws_no_grids(tmp_path, tiny_config, every):
    config = tiny_config(sample_every=every)
    config.validate()
    drawn = []

    def samples(writer):
        drawn.append(writer)
        return cb.PeriodicSamples(every, tmp_path / "samples", writer)

    callbacks = make_callbacks(config, RunDir(tmp_path / "run"), SimpleNamespace(optimizers={}), None, samples,
                               start=0, chief=True)
    found = [callback for callback in callbacks if isinstance(callback, cb.PeriodicSamples)]
    assert len(found) == len(drawn) == (1 if every else 0)
    assert isinstance(callbacks[-1], cb.StopOnSignal)  # installed last in every case


def test_a_negative_sample_every_names_the_flag(tiny_config):
    with pytest.raises(ConfigError, match="--sample-every -1: must be at least 0"):
        tiny_config(sample_every=-1).validate()
