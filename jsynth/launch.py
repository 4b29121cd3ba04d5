"""Starts N local processes of one ``jsynth`` command: a multi-host job rehearsed on one machine.

Each process gets ``--coordinator 127.0.0.1:PORT --num-processes N --process-id I`` and its own
share of host devices. The launch is bounded: if any process fails or the time limit passes,
every process it started is ended, so nothing is left hanging.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LaunchResult:
    returncodes: list[int]
    logs: list[str]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.returncodes)


def start_local(args: list[str], num_processes: int, *, devices_per_process: int = 1,
                port: int | None = None, log_dir: str | None = None, env: dict | None = None):
    """Starts the processes (``python -m jsynth.cli *args`` + the multi-process flags); returns
    (processes, log paths). Use ``wait_all`` to collect them."""
    port = port or free_port()
    base_env = dict(os.environ, **(env or {}))
    base_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
    base_env.setdefault("JAX_PLATFORMS", "cpu")
    log_dir = log_dir or os.getcwd()
    os.makedirs(log_dir, exist_ok=True)
    processes, logs = [], []
    for i in range(num_processes):
        log = os.path.join(log_dir, f"process-{i}.log")
        command = [sys.executable, "-m", "jsynth.cli", *args, "--coordinator", f"127.0.0.1:{port}",
                   "--num-processes", str(num_processes), "--process-id", str(i)]
        with open(log, "w") as f:
            processes.append(subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=base_env,
                                              start_new_session=True))
        logs.append(log)
    return processes, logs


def stop_all(processes, sig=signal.SIGKILL) -> None:
    """Sends ``sig`` to each started process's own session (itself and anything it spawned)."""
    for p in processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass


def wait_all(processes, logs, timeout_s: float) -> LaunchResult:
    """Waits for every process; on a failure or the deadline, ends the rest (bounded)."""
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in processes):
        if time.monotonic() > deadline:
            stop_all(processes)
            break
        if any(p.poll() not in (None, 0) for p in processes):
            time.sleep(2.0)  # let the peers report the failure themselves, then end them
            stop_all(processes)
            break
        time.sleep(0.1)
    codes = [p.wait() for p in processes]
    return LaunchResult(codes, logs)


def launch_local(args: list[str], num_processes: int, *, devices_per_process: int = 1,
                 timeout_s: float = 600, log_dir: str | None = None) -> LaunchResult:
    """Runs one jsynth command as ``num_processes`` local processes and waits for them."""
    processes, logs = start_local(args, num_processes, devices_per_process=devices_per_process,
                                  log_dir=log_dir)
    return wait_all(processes, logs, timeout_s)
