"""A thin wrapper over ``orbax.checkpoint.CheckpointManager``.

Each checkpoint holds the state pytree (restored bitwise, onto any device count, through an
abstract target that carries the wanted shardings) and a small JSON of metadata: the config and
the data position. No pickle. Saves are asynchronous; ``wait`` before reading or exiting.
"""
from __future__ import annotations

import os
import sys

import orbax.checkpoint as ocp

from jsynth.errors import UserError


class CheckpointError(UserError, RuntimeError):
    """No readable checkpoint where one was expected."""


class Checkpointer:
    """Saves and restores (state, metadata) under ``directory`` (made absolute)."""

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state, metadata: dict) -> None:
        if step in self._manager.all_steps():
            # Only a run that fell back past an unreadable checkpoint reaches a saved step again;
            # what it saves now is what that checkpoint should hold (steps are deterministic).
            self._manager.delete(step)
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(metadata)), force=True)

    def restore_metadata(self, step: int) -> dict:
        return self._manager.restore(step, args=ocp.args.Composite(
            metadata=ocp.args.JsonRestore()))["metadata"]

    def latest_metadata(self) -> dict | None:
        """The metadata of the newest checkpoint whose metadata reads, or None."""
        for step in reversed(self.steps()):
            try:
                return self.restore_metadata(step)
            except Exception:  # damaged: restore_latest reports it
                _quiet_closed_loops()
        return None

    def restore(self, step: int, abstract_state, *, partial: bool = False):
        """(state, metadata) of ``step``; ``abstract_state`` gives shapes, dtypes and shardings.

        ``partial=True``: ``abstract_state`` is a dict of some of the state's fields (by name);
        only those are read (e.g. a generator without its optimiser state).
        """
        if partial:
            state_args = ocp.args.PyTreeRestore(
                abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state),
                partial_restore=True)
        else:
            state_args = ocp.args.StandardRestore(abstract_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=state_args, metadata=ocp.args.JsonRestore()))
        return restored["state"], restored["metadata"]

    def restore_latest(self, abstract_state, *, partial: bool = False):
        """(state, metadata, step) of the newest readable checkpoint, or None if there is none.

        A checkpoint that fails to read (a corrupt or truncated file) is reported and skipped in
        favour of the one before it, so a damaged latest save costs only the steps since then.
        """
        failures = []
        for step in reversed(self.steps()):
            try:
                state, metadata = self.restore(step, abstract_state, partial=partial)
            except Exception as error:  # orbax/tensorstore raise many types for damaged files
                _quiet_closed_loops()
                message = f"checkpoint at step {step} in {self.directory} is unreadable ({type(error).__name__}: {str(error)[:200]})"
                print(f"warning: {message}; trying the previous one", file=sys.stderr, flush=True)
                failures.append(message)
                continue
            return state, metadata, step
        if failures:
            raise CheckpointError("no readable checkpoint: " + "; ".join(failures) +
                                  f". Each is damaged; to train afresh, use a new --workdir (or delete "
                                  f"{self.directory} if nothing in it is worth keeping)")
        return None

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _quiet_closed_loops() -> None:
    """Silences the "Event loop is closed" errors a failed restore leaves behind.

    When orbax gives up on a damaged checkpoint it closes its asyncio loop while tensorstore
    still completes the reads it had started; each completion then raises RuntimeError("Event
    loop is closed") in a tensorstore thread, which Python prints as dozens of tracebacks after
    the one warning that matters. Only that exact error is dropped; others reach the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_jsynth_quiet", False):
        return

    def hook(unraisable):
        value = unraisable.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        previous(unraisable)

    hook._jsynth_quiet = True
    sys.unraisablehook = hook
