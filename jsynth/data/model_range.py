"""Map [0, 1] images to the value range a model works in, and back.

GAN generators end in tanh, so they train on [-1, 1] ("tanh"); VAEs with a
Bernoulli/sigmoid decoder train on [0, 1] ("unit"). Both functions use only
array methods and operators, so they work on numpy and jax arrays alike.
"""
from collections.abc import Callable

from jsynth.data.errors import DataError

_TO_MODEL: dict[str, Callable] = {
    "tanh": lambda x: x * 2.0 - 1.0,
    "unit": lambda x: x,
}
_FROM_MODEL: dict[str, Callable] = {
    "tanh": lambda x: (x + 1.0) / 2.0,
    "unit": lambda x: x,
}


def _lookup(table: dict[str, Callable], kind: str) -> Callable:
    try:
        return table[kind]
    except KeyError:
        raise DataError(
            f"Unknown model range {kind!r}; valid kinds: {', '.join(table)}."
        ) from None


def to_model_range(images, kind: str):
    """Map images in [0, 1] to the model's range.

    Args:
      images: numpy or jax array with values in [0, 1].
      kind: "tanh" ([-1, 1], for GANs) or "unit" ([0, 1], for VAEs).

    Returns:
      An array of the same shape and type: x * 2 - 1 for "tanh", x for "unit".
    """
    return _lookup(_TO_MODEL, kind)(images)


def from_model_range(x, kind: str):
    """Map model outputs back to image values, clipped to [0, 1].

    Args:
      x: numpy or jax array in the model's range (values outside are clipped).
      kind: "tanh" or "unit", as given to to_model_range.

    Returns:
      An array of the same shape and type with values in [0, 1].
    """
    return _lookup(_FROM_MODEL, kind)(x).clip(0.0, 1.0)
