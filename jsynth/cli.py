"""The ``jsynth`` command line: parse, build a config, make one library call per command."""
from __future__ import annotations

import argparse
import json
import os
import sys

from jsynth.cpu_setup import configure_cpu
from jsynth.errors import InputError, UserError

# Errors a user can fix (their messages say how); anything else is a bug and keeps its traceback.


def _distributed_flags() -> argparse.ArgumentParser:
    """Flags shared by the commands that can run as N processes (train, sample, eval)."""
    env = os.environ.get
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("multi-process (multi-host) runs")
    group.add_argument("--coordinator", default=env("JSYNTH_COORDINATOR"), metavar="HOST:PORT",
                       help="process 0's address (env JSYNTH_COORDINATOR)")
    group.add_argument("--num-processes", type=int, default=_int_env("JSYNTH_NUM_PROCESSES"),
                       help="env JSYNTH_NUM_PROCESSES")
    group.add_argument("--process-id", type=int, default=_int_env("JSYNTH_PROCESS_ID"),
                       help="env JSYNTH_PROCESS_ID")
    group.add_argument("--distributed", action="store_true", default=env("JSYNTH_DISTRIBUTED") == "1",
                       help="let jax.distributed detect the cluster (SLURM, TPU pod, Kubernetes)")
    group.add_argument("--init-timeout", type=int, default=120, metavar="S",
                       help="seconds to wait for every process to join")
    group.add_argument("--heartbeat-timeout", type=int, default=30, metavar="S",
                       help="seconds after which a silent peer fails the job")
    return flags


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def _start_processes(args) -> None:
    if not (args.distributed or {args.coordinator, args.num_processes, args.process_id} - {None}):
        return  # a single-process run
    from jsynth import parallel
    parallel.start_distributed(args.coordinator, args.num_processes, args.process_id,
                               auto=args.distributed, init_timeout_s=args.init_timeout,
                               heartbeat_timeout_s=args.heartbeat_timeout)


_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """Seconds of '90', '90s', '10m' or '1.5h' (argparse reports a ValueError as a usage error)."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    seconds = float(number) * _UNITS[unit]
    if not seconds > 0:
        raise ValueError(text)
    return seconds


def index_range(text: str) -> tuple[int, int]:
    """``"START:STOP"`` -> (start, stop) (argparse reports a ValueError as a usage error)."""
    start, sep, stop = text.partition(":")
    if not sep or not start.strip().isdigit() or not stop.strip().isdigit():
        raise ValueError(text)
    return int(start), int(stop)


def _say(message: str) -> None:
    """Prints once per job: from process 0 of a multi-process run."""
    import jax
    if jax.process_index() == 0:
        print(message)


def _train(args) -> None:
    from jsynth import configs
    from jsynth.train import loop

    config = configs.TrainConfig(model=args.model, data=args.data, conditional=args.conditional)
    explicit = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                  ("seed", args.seed), ("checkpoint_every", args.checkpoint_every))
                if v is not None}
    config = configs.with_overrides(configs.replace(config, **explicit), args.set or [])
    for key, value in {**explicit, "model": args.model}.items():  # a flag and a --set must not disagree
        if getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise configs.ConfigError(f"{flag} {value} and --set {key}={getattr(config, key)} disagree; "
                                      f"give {flag} alone")
    if args.dry_run:
        print(json.dumps(loop.describe(loop.prepare(config)), indent=2))
        return
    state = loop.run(config, args.workdir, time_limit_s=args.time_limit, allow_changes=tuple(args.allow_change or ()))
    _say(f"{config.model} in {args.workdir} is at step {int(state.step)} of "
         f"{configs.resolve(config).steps}")


def _sample(args) -> None:
    from jsynth.generate import sample_to_disk
    from jsynth.table_sampling import sample_table_to_disk, table_sample_flags

    if table_sample_flags(args.workdir, args.condition, args.label, args.range):  # a table model (tvae, ctgan)
        manifest = sample_table_to_disk(args.workdir, args.out, num=args.num, batch_size=args.batch_size,
                                        seed=args.seed, condition=args.condition, fmt=args.format,
                                        shard_size=args.shard_size, use_ema=not args.no_ema)
        _say(f"wrote {manifest['num']} rows in {len(manifest['shards'])} shards to {args.out}")
        return
    manifest = sample_to_disk(args.workdir, args.out, num=args.num, batch_size=args.batch_size or 256,
                              seed=args.seed, label=args.label, fmt=args.format or "npz",
                              shard_size=args.shard_size, use_ema=not args.no_ema, sample_range=args.range)
    if args.range:
        _say(f"wrote samples {args.range[0]}..{args.range[1] - 1} of {manifest['num']} in "
             f"{len(manifest['shards'])} shards to {args.out}; when every range is done: "
             f"jsynth manifest merge {args.out}")
        return
    _say(f"wrote {manifest['num']} samples in {len(manifest['shards'])} shards to {args.out}")


def _pack(args) -> None:
    from jsynth.pack import DEFAULT_SHARD_SIZE, pack

    metadata = pack(args.data, args.out, shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
                    image_size=args.image_size)
    print(f"packed {metadata['num']} images {tuple(metadata['image_shape'])} in {len(metadata['shards'])} "
          f"shards to {args.out}; train with --data arrayrecord:{args.out}")


def _manifest(args) -> None:
    from jsynth.manifest_merge import merge_pieces

    manifest = merge_pieces(args.dirs, args.out)
    print(f"merged {manifest['num']} samples in {len(manifest['shards'])} shards into "
          f"{args.out or args.dirs[0]}/manifest.json")


def _eval(args) -> None:
    from jsynth.evaluate import options as eval_options, suite
    from jsynth.evaluate.tables.command import is_table_eval, table_eval_command

    if is_table_eval(args.samples, args.workdir, args.data):  # tables have their own metrics (jsynth.evaluate.tables)
        print(table_eval_command(samples=args.samples, workdir=args.workdir, data_spec=args.data,
                                 holdout_spec=args.holdout, json_path=args.json, report_dir=args.report,
                                 num=args.num, seed=args.seed, assignments=args.set or []))
        return
    options = eval_options.with_overrides(eval_options.EvalOptions(seed=args.seed), args.set or [])
    if args.workdir:
        result = suite.evaluate_run(args.workdir, args.data, num=args.num, json_path=args.json,
                                    report_dir=args.report, holdout_spec=args.holdout, options=options)
    else:
        if not args.data:
            raise InputError("--samples needs --data SPEC: the real data to compare with")
        result = suite.evaluate_samples(args.samples, args.data, json_path=args.json, report_dir=args.report,
                                        holdout_spec=args.holdout, generator_data=args.generator_data,
                                        options=options)
    if args.workdir or args.json:
        print(suite.summary(result))
    else:
        print(json.dumps(result, indent=1, default=str))


def _bench(args) -> None:
    from jsynth.bench.command import bench_command

    if args.kind == "tabular":
        from jsynth.bench.tabular import tabular_command
        tabular_command(args.data, target=args.target, epochs=args.epochs, batch_size=args.batch_size,
                        rows=args.num, steps_per_call=args.steps_per_call, as_json=args.json, out=args.out)
        return

    bench_command(args.kind, arch=args.arch, batch_size=args.batch_size, num=args.num,
                  devices=args.devices, dtype=args.dtype, upsample=args.upsample, torch=args.torch,
                  torch_modes=args.torch_modes, rounds=args.rounds, steps=args.steps,
                  as_json=args.json, out=args.out, data=args.data)


def _quickstart(args) -> None:
    from jsynth.quickstart import quickstart

    summary = quickstart(args.workdir)
    print(summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jsynth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # Commands without the multi-process flags run as one process.
    parser.set_defaults(coordinator=None, num_processes=None, process_id=None, distributed=False)

    quick = commands.add_parser("quickstart", help="train a small GAN and VAE on the bundled digits")
    quick.add_argument("--workdir", default="quickstart")
    quick.set_defaults(run=_quickstart)

    distributed = _distributed_flags()
    train = commands.add_parser("train", parents=[distributed],
                                help="train (or resume) a model in a workdir")
    train.add_argument("--model", required=True, help="mlpgan, dcgan, mlpvae or convvae; tvae or ctgan for tables")
    train.add_argument("--data", default="digits",
                       help="digits | mnist:DIR | npz:PATH | folder:DIR | arrayrecord:DIR")
    train.add_argument("--workdir", required=True)
    train.add_argument("--conditional", action="store_true", help="class-conditional model")
    train.add_argument("--steps", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--checkpoint-every", type=int)
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="any config field, e.g. --set learning_rate=1e-3 (repeatable)")
    train.add_argument("--time-limit", type=duration, metavar="DURATION",
                       help="wall-clock budget for the run, resumptions included, e.g. 10m, 90s, 1h: "
                            "trains until then, saves and exits 0 (a rerun with a larger budget continues)")
    train.add_argument("--allow-change", action="append", metavar="FIELD",
                       help="let a resumed run take a new value of FIELD (e.g. learning_rate after a "
                            "divergence); repeatable")
    train.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    train.set_defaults(run=_train)

    sample = commands.add_parser("sample", parents=[distributed],
                                 help="write samples of a trained run to disk")
    sample.add_argument("--workdir", required=True)
    sample.add_argument("--num", type=int, required=True)
    sample.add_argument("--out", required=True)
    sample.add_argument("--batch-size", type=int, help="samples per device call (default: 256; tables 10000)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--label", type=int, help="one class for every sample (default: balanced)")
    sample.add_argument("--format", choices=("npz", "png", "parquet", "csv"),
                        help="npz (default) or png for images; parquet (default) or csv for tables")
    sample.add_argument("--condition", metavar="COLUMN=VALUE",
                        help="tables: every row has this value of a categorical column")
    sample.add_argument("--shard-size", type=int)
    sample.add_argument("--no-ema", action="store_true", help="use the raw generator weights")
    sample.add_argument("--range", type=index_range, metavar="START:STOP",
                        help="write only the shards of samples START..STOP-1 (one job-array task; "
                             "whole shards: see `jsynth manifest merge`)")
    sample.set_defaults(run=_sample)

    packer = commands.add_parser("pack", help="write a data set as ArrayRecord shards for streaming")
    packer.add_argument("--data", required=True, help="digits | mnist:DIR | npz:PATH | folder:DIR")
    packer.add_argument("--out", required=True, help="a new directory")
    packer.add_argument("--shard-size", type=int, help="images per shard file (default 10000)")
    packer.add_argument("--image-size", type=int, help="folder: data: resize to this square size")
    packer.set_defaults(run=_pack)

    manifest = commands.add_parser("manifest", help="job-array sample pieces -> one manifest")
    manifest_commands = manifest.add_subparsers(dest="action", required=True)
    merge = manifest_commands.add_parser("merge", help="check the pieces of `sample --range` and join them")
    merge.add_argument("dirs", nargs="+", metavar="OUT", help="the pieces' --out directories")
    merge.add_argument("--out", help="where the merged set goes (default: the first OUT)")
    merge.set_defaults(run=_manifest)

    evaluate = commands.add_parser("eval", help="measure a run's samples, or any sample set, against real data")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a trained run: sample it, then evaluate")
    source.add_argument("--samples", help="a sample directory or .npz (e.g. from `jsynth sample` or another tool); "
                                         "with a table --data: a .csv/.parquet table or a folder of shards")
    evaluate.add_argument("--data", help="the real data (default with --workdir: the run's data)")
    evaluate.add_argument("--num", type=int, help="samples to draw from the run (default 10000)")
    evaluate.add_argument("--json", help="result file (default with --workdir: WORKDIR/eval/eval.json); "
                                         "the report folder goes beside it")
    evaluate.add_argument("--report", help="report folder (default: beside the JSON)")
    evaluate.add_argument("--holdout", metavar="SPEC", help="real held-out data the generator never saw")
    evaluate.add_argument("--generator-data", metavar="NAME",
                          help="with --samples: the data set the generator was trained on, if known")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--set", action="append", metavar="KEY=VALUE",
                          help="an evaluation option, e.g. --set utility_steps=1000 (repeatable); "
                               "tables: --set target=COLUMN, --set discrete_columns=a,b")
    evaluate.set_defaults(run=_eval)

    bench = commands.add_parser("bench", help="sampling / training throughput, optionally beside PyTorch")
    bench.add_argument("kind", choices=("sampling", "train", "input", "tabular"))
    bench.add_argument("--target", help="tabular: the label column")
    bench.add_argument("--epochs", type=int, default=3, help="tabular: epochs per model")
    bench.add_argument("--steps-per-call", type=int, default=1, help="tabular: steps per compiled call")
    bench.add_argument("--arch", help="dcgan28,dcgan64,mlpvae (comma list; train: dcgan28)")
    bench.add_argument("--batch-size", help="comma list, e.g. 256,1024")
    bench.add_argument("--num", type=int, help="samples per timed repetition (default: 2 chunks)")
    bench.add_argument("--devices", help="comma list of device counts, e.g. 1,2 (default: all)")
    bench.add_argument("--dtype", default="float32", help="float32,bfloat16 (comma list)")
    bench.add_argument("--upsample", default="subpixel", help="subpixel,dilated (comma list)")
    bench.add_argument("--torch", action="store_true", help="time the PyTorch twins alternately too")
    bench.add_argument("--torch-modes", help="eager,channels_last,compile (default: all three)")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    bench.add_argument("--steps", type=int, default=4, help="train, input: steps per repetition")
    bench.add_argument("--data", default="digits", help="input: the data to time, packed and in memory")
    bench.add_argument("--json", action="store_true", help="one JSON object per line")
    bench.add_argument("--out", help="also write the records to this JSON-lines file")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cpu()  # before any JAX computation: host devices, XLA:CPU flags (jsynth.cpu_setup)
    try:
        _start_processes(args)
        args.run(args)
    except UserError as error:  # an input to fix: one line; anything else is a bug and keeps its traceback
        print(f"jsynth {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system said no (read-only, full, a file where a folder goes)
        path = f"{error.filename}: " if error.filename else ""
        print(f"jsynth {args.command}: error: {path}{error.strerror or error}; fix that path or choose "
              "another, then rerun the same command (finished work is kept)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jsynth {args.command}: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
