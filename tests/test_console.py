"""What a user sees on the console: no TensorFlow C++ log lines from the commands, no grappler failure on the
training graph, and a training progress line that fits 100 columns, through a pipe and on a terminal.

Every command runs in a subprocess as a user starts it: without TF_CPP_MIN_LOG_LEVEL (the tests' own
conftest sets it, so it is removed here). The piped training run is the session's shared `tiny_v2_run`
(tests/harness/runs.py, started the same way), which tests/test_train.py inspects too.
"""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from PIL import Image

from stargan_keras.core.quiet import is_log_line
from tests.harness.commands import user_env
from tests.harness.runs import TINY_V2_TRAIN
from tests.harness.v1 import TINY_V1_TRAIN

TINY = [*TINY_V2_TRAIN, "--save-every", "4", "--sample-every", "4"]  # each test sets its steps after these
TIMEOUT = 900
COLUMNS = 100
V2_TERMS = ("D ", "G ", "adv ", "cyc ", "ds ")
V1_TERMS = ("D ", "G ", "D_cls ", "G_cls ", "rec ")

pytestmark = pytest.mark.slow


def command(name, *args, cwd, env=None):
    result = subprocess.run([sys.executable, "-m", f"stargan_keras.{name}", *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=TIMEOUT, env=env or user_env())
    assert result.returncode == 0, f"{name}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def log_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if is_log_line(line)]


def test_the_log_line_pattern():
    assert is_log_line("E0000 00:00:1796637515.488241    8743 cuda_platform.cc:52] failed call to cuInit")
    assert is_log_line("W1207 10:00:00.000000  123 meta_optimizer.cc:967] remapper failed")
    assert is_log_line("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_log_line("error: --img-size 7: pass a power of two")
    assert not is_log_line("UserWarning: something to act on")


def test_train_prints_no_tensorflow_log_line_and_one_short_line_per_log_interval(tiny_v2_run):
    """The shared 6-step run (--log-every 4), its stdout through a pipe."""
    assert log_lines(tiny_v2_run.err) == [], tiny_v2_run.err
    assert "\r" not in tiny_v2_run.out and "\x1b" not in tiny_v2_run.out
    lines = tiny_v2_run.out.splitlines()
    assert max(map(len, lines)) <= COLUMNS
    progress = [line for line in lines if line.startswith("step ") and "/6 " in line]
    assert [line.split()[1] for line in progress] == ["4/6", "6/6"]  # every --log-every steps and the last
    assert all(term in progress[-1] for term in (*V2_TERMS, "steps/s", "ETA "))
    summary = "\n".join(lines[lines.index(progress[-1]) + 1:])
    assert all(f"G/{mode}_{term} " in summary for mode in ("latent", "ref") for term in ("adv", "sty", "ds", "cyc"))


def _shape_folders(root: Path, domains=("circle", "square", "triangle")) -> Path:
    from stargan_keras.data.shapes import generate_shapes

    split = generate_shapes(2, img_size=16, seed=9)
    for index, (image, label) in enumerate(zip(split.images, split.labels)):
        folder = root / domains[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    return root


def test_export_tflite_sample_and_evaluate_print_no_tensorflow_log_line(tiny_v2_run, tmp_path):
    """Each command on the shared run, which they only read (evaluate's results go to --out)."""
    work, run = tmp_path, tiny_v2_run.run_dir
    results = [
        command("export", "--checkpoint", run, "--output", "models", "--mean-style-samples", "50", cwd=work),
        command("tflite", "--saved-model", "models/1", "--output", "tiny.tflite", cwd=work),
        command("sample", "--checkpoint", run, "--src", _shape_folders(work / "src"), "--ref",
                _shape_folders(work / "ref"), "--out", "figures", "--num-latent", "2", "--video-sources", "2",
                "--video-format", "gif", "--quiet", cwd=work),
        command("evaluate", "--checkpoint", run, "--mode", "latent", "--metrics", "accuracy", "--classifier-steps",
                "5", "--num-outputs", "2", "--max-images-per-domain", "2", "--out", "eval", "--quiet", cwd=work),
    ]
    for result in results:
        assert log_lines(result.stderr) == [], result.stderr
    assert (work / "tiny.tflite").is_file() and (work / "figures" / "reference.jpg").is_file()


def test_debug_and_a_users_level_show_tensorflow_logs_again(tmp_path):
    probe = ["-c", "import stargan_keras, tensorflow as tf; tf.constant(1)"]
    quiet = subprocess.run([sys.executable, *probe], capture_output=True, text=True, env=user_env(), cwd=tmp_path)
    loud = subprocess.run([sys.executable, *probe], capture_output=True, text=True, cwd=tmp_path,
                          env=user_env(TF_CPP_MIN_LOG_LEVEL="0"))
    debug = subprocess.run([sys.executable, *probe], capture_output=True, text=True, cwd=tmp_path,
                           env=user_env(STARGAN_KERAS_DEBUG="1"))
    assert log_lines(quiet.stderr) == [] and quiet.returncode == 0
    assert log_lines(loud.stderr) and log_lines(debug.stderr)


def test_grappler_optimizes_the_training_step_with_onednn(tmp_path):
    """With oneDNN on (it is on by default on CPUs with AVX-512 VNNI or AMX), grappler's remapper fused a
    convolution and a LeakyRelu whose input had other readers and gave up on the whole training graph."""
    result = command("train", *TINY, "--run-dir", "run", "--total-iters", "2", "--log-every", "1", cwd=tmp_path,
                     env=user_env(TF_CPP_MIN_LOG_LEVEL="0", TF_ENABLE_ONEDNN_OPTS="1"))
    assert "oneDNN custom operations are on" in result.stderr  # the logs are shown and oneDNN is on
    assert not [line for line in result.stderr.splitlines() if "remapper failed" in line
                or "meta_optimizer" in line], result.stderr


def _read_terminal(fd, process, timeout) -> bytes:
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    return output


def _on_terminal(argv, cwd, columns=COLUMNS):
    """Run a command on a pseudo-terminal of `columns` columns; return what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(argv, cwd=cwd, env=user_env(), stdin=follower, stdout=follower, stderr=follower,
                               close_fds=True)
    os.close(follower)
    try:
        output = _read_terminal(leader, process, TIMEOUT)
        assert process.wait(timeout=60) == 0, output.decode(errors="replace")[-3000:]
    finally:
        os.close(leader)
    return output.decode(errors="replace")


def _screen_lines(output: str) -> list[str]:
    """What each redraw shows: the text between carriage returns and newlines (a pty turns \\n into \\r\\n)."""
    return [piece for line in output.replace("\r\n", "\n").split("\n") for piece in line.split("\r")]


V1_TINY = [*TINY_V1_TRAIN, "--save-every", "4", "--sample-every", "4"]


@pytest.mark.parametrize("family", ["v2", "v1"])
def test_progress_on_a_100_column_terminal(family, tmp_path):
    terms, flags = (V2_TERMS, TINY) if family == "v2" else (V1_TERMS, V1_TINY)
    output = _on_terminal([sys.executable, "-m", "stargan_keras.train", *flags, "--run-dir", "run", "--total-iters",
                           "4", "--log-every", "1"], tmp_path)
    assert not log_lines(output), output
    screens = _screen_lines(output)
    assert max(len(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", screen).rstrip()) for screen in screens) <= COLUMNS
    progress = [screen for screen in screens if screen.startswith("step 4/4")]
    assert progress and all(term in progress[-1] for term in (*terms, "steps/s", "ETA ")), output
    assert "\r" in output.replace("\r\n", "")  # redrawn in place
