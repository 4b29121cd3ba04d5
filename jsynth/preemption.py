"""Preemption: SIGTERM means "finish this step, save, exit cleanly"; so does a first Ctrl-C.

Cluster schedulers (SLURM, Kubernetes, TPU/GCE maintenance) send SIGTERM some time before they
kill a job. In a multi-process run JAX's coordination service already catches SIGTERM and agrees
on one step at which every process stops (``reached_preemption_sync_point``), so that all of
them take part in the same collective checkpoint. A single process just records the signal.
"""
from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils


class PreemptionWatch:
    """``should_stop(step)`` is called after every step; True means save now and exit."""

    def __init__(self):
        self._signalled = False
        self._previous = {}
        self._multi_process = jax.process_count() > 1

    def __enter__(self):
        # JAX's preemption service owns SIGTERM in a multi-process run; Python signal handlers
        # can only be set from the main thread.
        if not self._multi_process and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False

    def _on_signal(self, signum, frame):
        self._signalled = True
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once, as usual
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))

    def should_stop(self, step: int) -> bool:
        if self._multi_process:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._signalled
