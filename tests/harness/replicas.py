"""Two replicas' arithmetic on one device, for the replica check of the family harness (`tests/test_families.py`).

Two replicas each run the training step on half of the global batch and meet at every update: their
gradients are summed (replica 0's + replica 1's) and applied once to the one set of weights both hold; their
loss terms are summed the same way; the step and the EMA advance once. `half_batch_sum_step` does exactly
that with the default strategy, the halves' steps in two threads of one process that meet at the same places,
with no `tf.distribute` reduction involved. Two replicas must equal it to rounding; one device on the whole
batch differs from both by the order in which the kernels sum over the batch.

Imported by the replica worker, a fresh process without pytest: nothing here imports pytest or torch.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from unittest import mock

HALVES = 2


class _Meeting:
    """Where the halves' threads wait for one another: `exchange` hands every thread's value to `combine`, run
    once, and returns its result to each thread."""

    def __init__(self, parties: int):
        self.barrier = threading.Barrier(parties)
        self.values: list = [None] * parties
        self.result = None
        self.local = threading.local()

    def exchange(self, value, combine):
        self.values[self.local.index] = value
        if self.barrier.wait() == 0:
            try:
                self.result = combine(list(self.values))
            except BaseException:
                self.barrier.abort()
                raise
        self.barrier.wait()
        return self.result


class _SummedOptimizer:
    """Stands for one optimizer of the trainer: applies the halves' gradients summed, once."""

    def __init__(self, optimizer, meeting: _Meeting):
        self.optimizer, self.meeting = optimizer, meeting

    def apply_gradients(self, pairs):
        pairs = list(pairs)

        def apply(every_half):
            variables = [variable for _, variable in pairs]
            sums = [sum(gradients[1:], gradients[0]) for gradients in zip(*[[g for g, _ in half] for half in every_half])]
            self.optimizer.apply_gradients(zip(sums, variables))

        self.meeting.exchange(pairs, apply)


def half_batch_sum_step(case, model, batch: dict) -> dict:
    """One iteration of `model` (built under the default strategy) on the global `batch`: the gradients of its
    halves summed, as two replicas compute them (see the module docstring). Returns the iteration's logs.

    For the iteration it stands in for the trainer's meeting points (`core.trainer_base`): the optimizers'
    `apply_gradients` (whose all-reduce sums the replicas' gradients), `_finish_logs` (whose all-reduce sums
    the terms), `_update_ema`, and `average_over_global_batch` in the family's trainer module, which then
    divides by the global batch as it does under two replicas. A renamed meeting point fails loudly here.
    """
    import tensorflow as tf

    meeting = _Meeting(HALVES)
    global_batch = int(next(iter(batch.values())).shape[0])
    size = global_batch // HALVES
    halves = [{key: value[i * size:(i + 1) * size] for key, value in batch.items()} for i in range(HALVES)]
    run = model._train_step_for(model._step_kind())
    update_ema = getattr(model, "_update_ema", None)

    def finish_logs(logs):
        """The halves' terms summed (as the replicas' all-reduce does); the step counted once, not per half."""
        def combine(every_half):
            model.step.assign_add(1 - HALVES)
            return {**{key: sum(half[key] for half in every_half[1:]) + every_half[0][key] for key in every_half[0]},
                    **model._schedule_logs()}

        return meeting.exchange({key: logs[key] for key in model.loss_trackers if key in logs}, combine)

    def thread(index, results):
        meeting.local.index = index
        try:
            results[index] = run(halves[index])
        except BaseException as err:  # handed to the caller's thread below
            meeting.barrier.abort()
            results[index] = err

    results: list = [None] * HALVES
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(
            importlib.import_module(case.trainer_module), "average_over_global_batch",
            lambda per_example: tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)))
        stack.enter_context(mock.patch.dict(model.optimizers, {
            name: _SummedOptimizer(optimizer, meeting) for name, optimizer in model.optimizers.items()}))
        stack.enter_context(mock.patch.object(model, "_finish_logs", finish_logs))
        if update_ema is not None:
            stack.enter_context(mock.patch.object(
                model, "_update_ema", lambda: meeting.exchange(None, lambda _: update_ema())))
        threads = [threading.Thread(target=thread, args=(index, results)) for index in range(HALVES)]
        for each in threads:
            each.start()
        for each in threads:
            each.join()
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        raise next((f for f in failures if not isinstance(f, threading.BrokenBarrierError)), failures[0])
    return results[0]


def load_reference_weights(case, model, config, directory, seed: int = 0) -> None:
    """The PyTorch reference's initial weights (those the parity checks start from) into the trainer `model`,
    through the family's authors' checkpoint files. Imports torch."""
    _, checkpoint, discriminator = case.authors_files(config, directory, seed=seed)
    case.load_authors_weights(model, checkpoint, discriminator)
