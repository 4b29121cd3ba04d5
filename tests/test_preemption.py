"""SIGTERM and a first Ctrl-C ask training to save and stop; a second Ctrl-C interrupts at once."""
import os
import signal

import pytest

from jsynth import configs
from jsynth.preemption import PreemptionWatch
from jsynth.train import loop


def test_sigterm_and_a_first_ctrl_c_are_recorded_not_fatal():
    for signum in (signal.SIGTERM, signal.SIGINT):
        with PreemptionWatch() as watch:
            assert not watch.should_stop(1)
            os.kill(os.getpid(), signum)
            assert watch.should_stop(2)


def test_a_second_ctrl_c_interrupts():
    # Hermetic: Python's own Ctrl-C handler before the watch (whatever an earlier test left), and
    # signals raised in this thread (os.kill may hand them to one of JAX's threads, and Python
    # then runs the handler only at its next chance: this failed in the full suite).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with PreemptionWatch() as watch:
            signal.raise_signal(signal.SIGINT)
            assert watch.should_stop(1)
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, outer)


def test_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with PreemptionWatch():
        pass
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.slow  # a SIGTERM during training, then a resumed run (two compiles, ~4 s)
def test_a_signalled_run_saves_where_it_stopped_and_resumes(tmp_path, monkeypatch):
    config = configs.tiny("mlpvae", steps=8, checkpoint_every=1000, log_every=1000)
    # The signal arrives during step 3 (as the batch for it is drawn).
    from jsynth import data as jdata
    real = jdata.batch_indices

    def batch_indices(step, *args, **kwargs):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(step, *args, **kwargs)

    monkeypatch.setattr(jdata, "batch_indices", batch_indices)
    state = loop.run(config, str(tmp_path / "run"))
    assert int(state.step) == 3
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["3"]
    monkeypatch.setattr(jdata, "batch_indices", real)
    assert int(loop.run(config, str(tmp_path / "run")).step) == 8
