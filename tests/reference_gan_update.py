"""A stored copy of ``GANFamily.update`` as it was before the training-recipe options (commit c8542cb).

The default recipe (non-saturating loss, none of the options) must compute bitwise what this
computed: tests/test_gan_recipes.py compares the two. The body is verbatim except that the state
it returns carries the field added since (``d_batch_stats``, passed through). Call it as
``update_before_recipes(family, state, batch, key)``.
"""
import jax
import jax.numpy as jnp
import optax

from jsynth import losses
from jsynth.families.gan import GANState, ema_decay_at
from jsynth.train.steps import device_key, mean_over, normal_rows, vary


def update_before_recipes(self, state: GANState, batch, key):
    """Simultaneous updates, non-saturating loss.

    One generator forward and one discriminator forward on the real and on the fake batch, as
    in the TensorFlow DCGAN tutorial's ``train_step``: D descends BCE(D(x), 1) + BCE(D(G(z)), 0),
    G descends BCE(D(G(z)), 1) through the same D(G(z)).
    """
    axis_name, generator, discriminator = self.axis_name, self.generator, self.discriminator
    real = batch["image"]
    labels = batch["label"] if self.num_classes else None
    key_z, key_dropout = jax.random.split(key)
    z = normal_rows(key_z, (real.shape[0], self.latent_dim), axis_name)
    key_dropout = device_key(key_dropout, axis_name)

    def generate(g_params):
        variables = {"params": g_params, "batch_stats": state.g_batch_stats}
        return generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])

    fake, g_vjp, g_mutated = jax.vjp(generate, vary(state.g_params, axis_name), has_aux=True)

    def discriminate(d_params, images, labels, key):
        return discriminator.apply({"params": d_params}, images, labels, train=True, rngs={"dropout": key})

    # Real and fake go through D separately: the generator's gradient needs D's input gradient
    # on the fake half only, and a backward pass over [real; fake] with zero cotangents on the
    # real half would do that work twice (measured in the README's Benchmarks).
    d_params = vary(state.d_params, axis_name)
    key_real, key_fake = jax.random.split(key_dropout)
    real_logits, d_vjp_real = jax.vjp(lambda p: discriminate(p, real, labels, key_real), d_params)
    fake_logits, d_vjp_fake = jax.vjp(lambda p, f: discriminate(p, f.astype(real.dtype), labels, key_fake),
                                      d_params, fake)
    d_loss, (d_real_ct, d_fake_ct) = jax.value_and_grad(losses.discriminator_loss, (0, 1))(
        real_logits, fake_logits)
    g_loss, g_fake_ct = jax.value_and_grad(losses.generator_loss_nonsaturating)(fake_logits)
    (d_grads_real,) = d_vjp_real(d_real_ct)
    d_grads_fake, _ = d_vjp_fake(d_fake_ct)
    d_grads = jax.tree.map(jnp.add, d_grads_real, d_grads_fake)
    _, fake_ct = d_vjp_fake(g_fake_ct)
    (g_grads,) = g_vjp(fake_ct)
    d_grads, g_grads = mean_over((d_grads, g_grads), axis_name)

    g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)
    decay = ema_decay_at(state.step, self.ema_decay)
    ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
    new_state = GANState(step=state.step + 1, g_params=g_params,
                         g_batch_stats=g_mutated.get("batch_stats", state.g_batch_stats),
                         g_opt_state=g_opt_state, d_params=d_params, d_opt_state=d_opt_state,
                         ema_params=ema_params,
                         d_batch_stats=state.d_batch_stats)  # the one change: the field added since
    metrics = {"d_loss": d_loss, "g_loss": g_loss,
               "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    return new_state, mean_over(metrics, axis_name)
