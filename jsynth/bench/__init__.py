"""Benchmarks: sampling and training throughput of the reference architectures, side by side
with their PyTorch twins (``torch_reference``, optional), against the matmul peak measured in
the same process (``peak``) and the FLOPs of ``docs/architectures.md`` (``flops``).

Library code only: ``jsynth bench`` and the scripts in ``benchmarks/`` call ``run_sampling`` /
``run_train`` and print what they return. Nothing here imports ``torch`` unless asked to.
"""
