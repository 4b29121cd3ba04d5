"""Rehearse a multi-host job on one machine: N local processes of one jsynth command.

    python examples/launch_local.py --processes 2 --devices-per-process 2 -- \
        train --model dcgan --conditional --steps 200 --workdir runs/two-process

Every process gets --coordinator/--num-processes/--process-id; logs go to --log-dir.
"""
import argparse
import sys

from jsynth.launch import launch_local


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices-per-process", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before all are ended")
    parser.add_argument("--log-dir", default="launch-logs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a jsynth command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the jsynth command after --, e.g. -- train --model dcgan --workdir runs/x")
    result = launch_local(command, args.processes, devices_per_process=args.devices_per_process,
                          timeout_s=args.timeout, log_dir=args.log_dir)
    for i, (code, log) in enumerate(zip(result.returncodes, result.logs)):
        print(f"process {i}: exit {code}, log {log}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
