"""Differentially private training (DP-SGD): accounting, Poisson batches and the gradient wrapper.

``accounting`` (dp_accounting's PLD, RDP as a cross-check), ``poisson`` (the batches), ``mechanism``
(``PrivateFamily``: clip, sum, noise once), ``plan`` (config -> plan, records), ``fields`` (config
validation). Import the submodule you need; this package imports nothing at import time, so
``jsynth.configs`` can use ``fields`` without loading JAX or an accountant.
"""
