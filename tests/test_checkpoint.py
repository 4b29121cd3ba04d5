"""jsynth.checkpoint: bitwise round trips, restoring onto another device count, damaged checkpoints.

The state is a tiny conditional DCGAN's after two steps: every kind of leaf a run saves (two nets,
BatchNorm statistics, two Adam states, the EMA generator, the step).
"""

import jax
import pytest

from helpers import (DIGITS_CLASSES, assert_trees_bitwise_equal, compilation_cache,  # noqa: F401
                     corrupt_checkpoint as corrupt, fixed_batch, host, place, tiny_family, trees_differ)
from jsynth import parallel
from jsynth.checkpoint import Checkpointer, CheckpointError
from jsynth.train.steps import jit_over_mesh

# Orbax's reader threads complain after a failed read of a damaged checkpoint; harmless here.
pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")]

KEY = jax.random.key(7)


class Trained:
    """Initial state, the states after steps 1 and 2 (host copies), and the step on 8 devices."""

    def __init__(self):
        self.config, self.family = tiny_family("dcgan", conditional=True)
        self.mesh = parallel.data_mesh(8)
        rep = parallel.replicated(self.mesh)
        self.step_fn = jit_over_mesh(self.family.update, self.mesh)
        state = jax.jit(self.family.init, out_shardings=rep)(jax.random.key(0))
        self.states = [host(state)]
        for i in range(2):
            state = self.step(state, i)
            self.states.append(host(state))
        self.shapes = jax.eval_shape(self.family.init, jax.random.key(0))

    def step(self, state, i):
        batch = parallel.shard_batch(self.mesh, fixed_batch("tanh", 16, DIGITS_CLASSES, seed=i))
        return self.step_fn(state, batch, jax.random.fold_in(KEY, i))[0]

    def target(self, mesh):
        """The abstract state a restore fills: shapes, dtypes and replicated shardings on ``mesh``."""
        rep = parallel.replicated(mesh)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), self.shapes)


@pytest.fixture(scope="module")
def trained():
    return Trained()


def save(directory, steps_and_states, mesh, max_to_keep=3):
    checkpoints = Checkpointer(str(directory), max_to_keep)
    for step, state in steps_and_states:
        checkpoints.save(step, place(state, mesh), {"step": step, "note": f"saved at {step}"})
    checkpoints.close()


@pytest.mark.slow
def test_round_trip_is_bitwise_and_gives_the_same_next_step(trained, tmp_path):
    state = trained.states[2]
    save(tmp_path, [(2, state)], trained.mesh)
    checkpoints = Checkpointer(str(tmp_path))
    assert checkpoints.steps() == [2] and checkpoints.latest_step() == 2
    restored, metadata = checkpoints.restore(2, trained.target(trained.mesh))
    assert metadata == {"step": 2, "note": "saved at 2"}
    assert checkpoints.restore_metadata(2) == metadata
    checkpoints.close()
    assert int(restored.step) == 2
    assert_trees_bitwise_equal(restored, state)
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding.is_equivalent_to(parallel.replicated(trained.mesh), leaf.ndim)
    after_restored = trained.step(restored, 2)
    after_original = trained.step(place(state, trained.mesh), 2)
    assert_trees_bitwise_equal(after_restored, after_original)
    assert trees_differ(after_restored, state)


@pytest.mark.slow
@pytest.mark.parametrize("saved_on, restored_on", ((8, 1), (1, 8)))
def test_restore_onto_a_different_device_count(trained, tmp_path, saved_on, restored_on):
    state = trained.states[1]
    save(tmp_path, [(1, state)], parallel.data_mesh(saved_on))
    checkpoints = Checkpointer(str(tmp_path))
    mesh = parallel.data_mesh(restored_on)
    restored, _ = checkpoints.restore(1, trained.target(mesh))
    checkpoints.close()
    assert_trees_bitwise_equal(restored, state)
    for leaf in jax.tree.leaves(restored):
        assert len(leaf.sharding.device_set) == restored_on


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(trained, tmp_path, capsys):
    save(tmp_path, [(1, trained.states[1]), (2, trained.states[2])], trained.mesh)
    corrupt(tmp_path, 2)
    checkpoints = Checkpointer(str(tmp_path))
    state, metadata, step = checkpoints.restore_latest(trained.target(trained.mesh))
    checkpoints.close()
    assert step == 1 and metadata["step"] == 1
    assert_trees_bitwise_equal(state, trained.states[1])
    warned = capsys.readouterr().err.splitlines()
    assert len(warned) == 1 and "checkpoint at step 2" in warned[0] and "unreadable" in warned[0]


@pytest.mark.slow
def test_saving_again_over_a_damaged_step_replaces_it(trained, tmp_path):
    # A run that fell back from a damaged step 2 to step 1 reaches step 2 again and saves it.
    save(tmp_path, [(1, trained.states[1]), (2, trained.states[0])], trained.mesh)
    corrupt(tmp_path, 2)
    checkpoints = Checkpointer(str(tmp_path))
    target = trained.target(trained.mesh)
    assert checkpoints.restore_latest(target)[2] == 1
    checkpoints.save(2, place(trained.states[2], trained.mesh), {"step": 2})
    checkpoints.wait()
    state, metadata, step = checkpoints.restore_latest(target)
    checkpoints.close()
    assert step == 2 and metadata == {"step": 2}
    assert_trees_bitwise_equal(state, trained.states[2])


@pytest.mark.slow
def test_no_readable_checkpoint_raises_checkpoint_error(trained, tmp_path):
    target = trained.target(trained.mesh)
    empty = Checkpointer(str(tmp_path / "empty"))
    assert empty.restore_latest(target) is None  # nothing saved yet: start afresh
    empty.close()
    save(tmp_path / "ckpt", [(1, trained.states[1]), (2, trained.states[2])], trained.mesh)
    for step in (1, 2):
        corrupt(tmp_path / "ckpt", step)
    checkpoints = Checkpointer(str(tmp_path / "ckpt"))
    with pytest.raises(CheckpointError, match=r"no readable checkpoint.*step 2.*step 1"):
        checkpoints.restore_latest(target)
    checkpoints.close()


@pytest.mark.slow
def test_max_to_keep_keeps_the_newest(trained, tmp_path):
    save(tmp_path, [(s, trained.states[s % 3]) for s in (1, 2, 3, 4)], trained.mesh, max_to_keep=2)
    checkpoints = Checkpointer(str(tmp_path), 2)
    assert checkpoints.steps() == [3, 4]
    state, _, step = checkpoints.restore_latest(trained.target(trained.mesh))
    checkpoints.close()
    assert step == 4
    assert_trees_bitwise_equal(state, trained.states[1])
