"""Keras callbacks of a training run: progress, checkpoints, signals, non-finite losses, TensorBoard, samples.

Every callback reads the trainer's own step counter (`model.step`, the number of
finished iterations) rather than Keras' batch index, which restarts at 0 when a run
resumes. Order matters in the callback list: `StopOnNonFiniteLoss` must come before
`PeriodicCheckpoint`, so that a step with a non-finite loss is never saved.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core.run_dir import remove_partial_save
from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import save_image


def current_step(model) -> int:
    return int(model.step.numpy())


def _as_float(value) -> float:
    return float(np.asarray(value))


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite: the weights of that step are not worth keeping."""

    def __init__(self, step: int, term: str, value: float):
        self.step, self.term, self.value = step, term, value
        super().__init__(f"step {step}: loss term {term} is {value}")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (a full disk, lost permissions); the message names it and the fix."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise NonFiniteLossError naming the step and the first non-finite term (checkpoints come after this)."""

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            number = _as_float(value)
            if not math.isfinite(number):
                raise NonFiniteLossError(current_step(self.model), name, number)


class StopOnSignal(keras.callbacks.Callback):
    """Turn Ctrl-C / SIGTERM into "finish this step, then stop" so the saved state is consistent.

    A second Ctrl-C restores the default handlers and interrupts at once.
    """

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        super().__init__()
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt
        self.received = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step and saving a checkpoint\n"
              "(press Ctrl-C again to quit without saving).", file=sys.stderr, flush=True)

    def _restore(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_begin(self, logs=None):
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.signals}

    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self._restore()


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save through a tf.train.CheckpointManager every `every` steps and when training ends (also on a stop)."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.saved_step: int | None = None

    def save(self) -> str:
        step = current_step(self.model)
        if step != self.saved_step:
            try:
                self.manager.save(checkpoint_number=step)
            except (OSError, tf.errors.OpError) as err:
                prefix = str(Path(self.manager.directory) / f"ckpt-{step}")
                remove_partial_save(prefix)
                reason = (getattr(err, "message", None) or str(err)).strip().splitlines()[0]
                raise CheckpointWriteError(
                    f"could not save checkpoint {prefix} ({reason[:200]}); its partial files were removed. Free "
                    "some space (or fix the permissions) and re-run the same command: it resumes from "
                    f"{self.manager.latest_checkpoint or 'the start'}.") from None
            self.saved_step = step
        return self.manager.latest_checkpoint

    def on_train_begin(self, logs=None):
        if self.manager.latest_checkpoint:
            self.saved_step = current_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if current_step(self.model) % self.every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()


PROGRESS_WIDTH = 100  # columns of the progress line, at most (fewer on a narrower terminal)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _pack(items: list[str], width: int, title: str) -> list[str]:
    """`title` then the items two spaces apart, in lines of at most `width` columns (an item is never split)."""
    lines = [title]
    for item in items:
        if len(lines[-1]) + 2 + len(item) > width:
            lines.append(" ")
        lines[-1] += "  " + item
    return lines


class ProgressBar(keras.callbacks.Callback):
    """One progress line that fits PROGRESS_WIDTH columns: step/total, steps/s, time left, and the model's
    `progress_terms(logs)` (the D and G totals and a few terms that tell a run is healthy).

    On a terminal the line is redrawn in place; a pipe or a log file gets one plain line every
    `every` steps and at the last one. Every term stays in TensorBoard, and when training ends
    the last value of each is printed, wrapped to the same width.
    """

    REDRAW_SECONDS = 0.1

    def __init__(self, start_step: int, total_steps: int, every: int = 10, stream=None):
        super().__init__()
        self.start_step, self.total_steps, self.every = start_step, total_steps, max(int(every), 1)
        self._stream = stream
        self.latest: dict[str, float] = {}
        self.tty, self.width = False, PROGRESS_WIDTH
        self._first = None  # (step, time) after the first step, which includes tracing
        self._drawn = 0.0
        self._shown = 0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def on_train_begin(self, logs=None):
        self.tty = self.stream.isatty()
        columns = shutil.get_terminal_size((PROGRESS_WIDTH, 24)).columns if self.tty else PROGRESS_WIDTH
        self.width = max(min(columns - 1 if self.tty else columns, PROGRESS_WIDTH), 40)

    def terms(self) -> list[tuple[str, float]]:
        summarize = getattr(self.model, "progress_terms", None)
        if summarize is None:
            return list(self.latest.items())
        return summarize(self.latest)

    def line(self, step: int, now: float) -> str:
        parts = [f"step {step}/{self.total_steps}"]
        if self._first is not None and step > self._first[0] and now > self._first[1]:
            rate = (step - self._first[0]) / (now - self._first[1])
            parts += [f"{rate:.3g} steps/s", f"ETA {_clock((self.total_steps - step) / rate)}"]
        else:
            parts += ["-- steps/s", "ETA --"]
        parts += [f"{name} {_number(value)}" for name, value in self.terms()]
        while len(parts) > 1 and len("  ".join(parts)) > self.width:
            parts.pop()
        return "  ".join(parts)[:self.width]

    def on_train_batch_end(self, batch, logs=None):
        self.latest.update((name, _as_float(value)) for name, value in (logs or {}).items())
        step, now = current_step(self.model), time.perf_counter()
        if self._first is None:
            self._first = (step, now)
        if self.tty:
            if now - self._drawn >= self.REDRAW_SECONDS or step >= self.total_steps:
                text = self.line(step, now)
                self.stream.write("\r" + text.ljust(self._shown))
                self.stream.flush()
                self._drawn, self._shown = now, len(text)
        elif step % self.every == 0 or step >= self.total_steps:
            self.stream.write(self.line(step, now) + "\n")
            self.stream.flush()

    def on_train_end(self, logs=None):
        if self.tty and self._shown:
            self.stream.write("\n")
        if self.latest:
            pairs = [f"{name} {_number(value)}" for name, value in sorted(self.latest.items())]
            self.stream.write("\n".join(_pack(pairs, self.width, "last values:")) + "\n")
        self.stream.flush()


class TensorBoardScalars(keras.callbacks.Callback):
    """Every loss term, lambda_ds, the learning rates and steps/s, every `every` steps."""

    def __init__(self, writer, every: int, optimizers: dict):
        super().__init__()
        self.writer, self.every, self.optimizers = writer, every, optimizers
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = (current_step(self.model), time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if step % self.every:
            return
        now = time.perf_counter()
        last_step, last_time = self._last
        self._last = (step, now)
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(name, _as_float(value))
            for name, optimizer in self.optimizers.items():
                tf.summary.scalar(f"learning_rate/{name}", _as_float(optimizer.learning_rate))
            if step > last_step:
                tf.summary.scalar("speed/steps_per_second", (step - last_step) / max(now - last_time, 1e-9))

    def on_train_end(self, logs=None):
        self.writer.flush()


class PeriodicSamples(keras.callbacks.Callback):
    """Image grids every `every` steps and at the end: JPEGs in samples/ and images in TensorBoard.

    A subclass says what to draw: `grids()` -> {name: uint8 image}, from the networks as they are now.
    """

    def __init__(self, every: int, samples_dir, writer):
        super().__init__()
        self.every, self.samples_dir, self.writer = every, Path(samples_dir), writer
        self.sampled_step: int | None = None

    def grids(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def sample(self, step: int) -> list[Path]:
        paths = []
        with self.writer.as_default(step=step):
            for name, grid in self.grids().items():
                paths.append(save_image(self.samples_dir / f"{step:06d}_{name}.jpg", grid))
                tf.summary.image(f"samples/{name}", grid[None], max_outputs=1)
        self.writer.flush()
        self.sampled_step = step
        return paths

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if step % self.every == 0:
            self.sample(step)

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        if step != self.sampled_step and not self.model.stop_training:  # an interrupted run exits fast
            self.sample(step)


class ProfileWindow(keras.callbacks.Callback):
    """tf.profiler over steps first..last (1-based, inclusive) into the TensorBoard log directory."""

    def __init__(self, log_dir, first: int, last: int):
        super().__init__()
        self.log_dir, self.first, self.last = str(log_dir), first, last
        self.active = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.active and current_step(self.model) + 1 == self.first:
            tf.profiler.experimental.start(self.log_dir)
            self.active = True

    def on_train_batch_end(self, batch, logs=None):
        if self.active and current_step(self.model) >= self.last:
            self._stop()

    def on_train_end(self, logs=None):
        if self.active:
            self._stop()

    def _stop(self):
        tf.profiler.experimental.stop()
        self.active = False
