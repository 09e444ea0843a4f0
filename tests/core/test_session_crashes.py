"""A training run killed (SIGKILL) at random moments around its checkpoint writes resumes every time from an
intact checkpoint, and ends with exactly the weights of a run that was never interrupted.

The runs are StarGAN v1's: the session's checkpoint writes know no family, a v1 process starts in a third of a
v2 one's time, and its two kinds of iteration (D alone; D and G every n_critic-th) make where a kill lands
matter. StarGAN v2's exact resume after SIGTERM and SIGKILL is checked in tests/test_train.py."""

import functools
import random
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.harness.v1 import TINY_V1_TRAIN

KILLS = 20
TOTAL_STEPS = 40
# The harness's tiny v1 run, with the learning rate decaying (its schedule is state a resume must get right).
ARGS = [*TINY_V1_TRAIN, "--lr-decay", "linear", "--total-iters", str(TOTAL_STEPS), "--save-every", "1",
        "--keep-checkpoints", "2", "--sample-every", "1000", "--log-every", "1000", "--shapes-train-per-domain", "8"]
TIMEOUT = 600

# The train command, killed by a thread that waits for the Nth checkpoint write of this process to begin,
# then sleeps a random moment (during the write or just after it) and sends SIGKILL.
DRIVER = textwrap.dedent("""
    import os, signal, sys, threading, time
    import tensorflow as tf
    from stargan_keras import train

    nth_save, delay, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    started = threading.Semaphore(0)
    original_save = tf.train.CheckpointManager.save

    def save(self, *args, **kwargs):
        started.release()
        return original_save(self, *args, **kwargs)

    def killer():
        for _ in range(nth_save):
            started.acquire()
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGKILL)

    tf.train.CheckpointManager.save = save
    threading.Thread(target=killer, daemon=True).start()
    sys.exit(train.main(argv))
""")


def run_train(python, run_dir: Path, driver: Path | None = None, nth_save: int = 1, delay: float = 0.0):
    """The command (or DRIVER) forked by `python`, the warm interpreter: a kill ends a process all the same."""
    command = ["-m", "stargan_keras.train"] if driver is None else [str(driver), str(nth_save), f"{delay:.4f}"]
    return python.run([*command, *ARGS, "--run-dir", str(run_dir)], cwd=run_dir.parent, timeout=TIMEOUT)


def trained_tensors(run_dir: Path) -> dict:
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{TOTAL_STEPS}"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith(("networks/", "optimizers/", "step/"))}


def kill_repeatedly(python, run_dir: Path, driver: Path, kills: int, seed: int) -> list[int]:
    """Start and SIGKILL the same command `kills` times; the step each run started from (0: a new run)."""
    rng = random.Random(seed)
    started_from = []
    for kill in range(kills):
        result = run_train(python, run_dir, driver, nth_save=rng.choice((1, 2, 3)), delay=rng.uniform(0.0, 0.15))
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        match = re.search(r"resuming from step (\d+)", result.stdout)
        if match:
            started_from.append(int(match.group(1)))
        else:  # a new run is right only while no checkpoint has ever been completed
            assert "new run" in result.stdout and not any(started_from), result.stdout[-1500:]
            started_from.append(0)
        assert result.returncode == -9, f"kill {kill}: exit {result.returncode}: {result.stderr[-3000:]}"
    return started_from


@pytest.mark.slow
def test_sigkill_around_checkpoint_writes_always_resumes_exactly(tmp_path, warm_python):
    """Two runs killed KILLS / 2 times each, beside the uninterrupted one (three processes on two cores)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed = [tmp_path / "killed_a", tmp_path / "killed_b"]
    with ThreadPoolExecutor(3) as pool:
        reference = pool.submit(run_train, warm_python, tmp_path / "uninterrupted")
        series = [pool.submit(kill_repeatedly, warm_python, run_dir, driver, KILLS // 2, seed)
                  for seed, run_dir in enumerate(killed)]
        started_from = [future.result() for future in series]
        finals = list(pool.map(functools.partial(run_train, warm_python), killed))
    assert reference.result().returncode == 0, reference.result().stderr[-3000:]
    print(f"killed {KILLS} times; the runs started from steps {started_from}")
    for steps in started_from:
        assert steps == sorted(steps), "a resume went back to an older checkpoint than a previous one"
    assert min(steps[-1] for steps in started_from) >= 3, "too few checkpoints completed between the kills"

    expected = trained_tensors(tmp_path / "uninterrupted")
    assert {name.split("/")[0] for name in expected} == {"networks", "optimizers", "step"}
    assert sum(name.startswith("optimizers/") for name in expected) > 50  # both networks' Adam moments
    for run_dir, final in zip(killed, finals):
        assert final.returncode == 0, final.stderr[-3000:]
        actual = trained_tensors(run_dir)
        assert expected.keys() == actual.keys()
        differing = [name for name in expected if not np.array_equal(expected[name], actual[name])]
        assert not differing, differing[:10]
