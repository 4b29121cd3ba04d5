"""Importing jsynth changes nothing; ``jsynth.configure_cpu()`` sets host devices and the CPU
convolution flag before JAX starts, and every way to keep them out works. Each case runs in a
fresh interpreter: the settings only count there."""
import json
import os
import subprocess
import sys

import pytest

CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
PROBE = """
import json, os
import jax, jsynth
jsynth.configure_cpu()  # after importing jax, before any computation: still in time
import jax.numpy as jnp
x = jnp.ones((1, 6, 6, 2))
y = jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 2, 4)), (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
print(json.dumps({"flags": os.environ.get("XLA_FLAGS", ""), "devices": jax.local_device_count(),
                  "centre": float(y[0, 2, 2, 0])}))
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_FLAGS", "JSYNTH_"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


IMPORT_ONLY = """
import ctypes, json, os, sys
before = os.environ.get("XLA_FLAGS")
import jsynth, jsynth.cli, jsynth.train.loop, jsynth.evaluate
import jax
print(json.dumps({"before": before, "after": os.environ.get("XLA_FLAGS"),
                  "devices": jax.local_device_count()}))
"""


def test_importing_jsynth_changes_nothing():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_FLAGS", "JSYNTH_"))}
    for env in ({}, {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}):
        out = subprocess.run([sys.executable, "-c", IMPORT_ONLY], env={**clean, **env}, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        assert result["after"] == result["before"] == env.get("XLA_FLAGS")
        assert result["devices"] == 1  # JAX's own default: no host devices were added


@pytest.mark.slow
def test_configure_cpu_sets_host_devices_and_eigen_convolutions():
    result = probe()
    cores = len(os.sched_getaffinity(0))
    assert "--xla_force_host_platform_device_count" not in result["flags"]  # set through jax.config
    assert result["devices"] == cores
    from jsynth.cpuconvolutions import MEASURED_ON, _jaxlib_minor
    assert (f"{CONV_FLAG}=-individual_convolution" in result["flags"]) == (_jaxlib_minor() == MEASURED_ON)
    assert result["centre"] == 18.0  # 3x3 taps x 2 channels of ones: XLA accepted the flags and ran


@pytest.mark.parametrize("env,kept_out", [
    ({"JSYNTH_CPU_CONVOLUTIONS": "ynnpack"}, CONV_FLAG),
    ({"XLA_FLAGS": f"{CONV_FLAG}=dot"}, "-individual_convolution"),
    ({"JSYNTH_HOST_DEVICES": "0"}, "--xla_force_host_platform_device_count"),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=13"}, "device_count=" + str(len(os.sched_getaffinity(0)))),
])
@pytest.mark.slow
def test_each_flag_can_be_kept_out(env, kept_out):
    result = probe(**env)
    assert kept_out not in result["flags"]
    assert result["centre"] == 18.0
    if "device_count=13" in env.get("XLA_FLAGS", ""):
        assert result["devices"] == 13  # the user's count, not one per core
    if env.get("JSYNTH_HOST_DEVICES") == "0":
        assert result["devices"] == 1  # JAX's default
