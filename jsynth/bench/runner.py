"""``jsynth bench``: contenders timed alternately, turned into JSON records (README, Benchmarks).

For each (architecture, batch size) every contender (jsynth for each device count, dtype and
upsampling mode; PyTorch for each mode when asked) is compiled first, then all are timed in
interleaved rounds (``timing.interleave``). One record per contender carries the README's
fields (``bench, arch, batch_size, num, devices, dtype, samples_per_s, compile_s,
flops_per_sample, achieved_gflops, peak_gflops, mfu``) and the exact-FLOP versions beside them;
with PyTorch there is one ``summary`` record per group with the ratios.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterable

from jsynth.bench import flops, peak, sampling_bench, timing, train_bench
from jsynth.bench.sampling_bench import Contender

DEFAULT_TORCH_MODES = ("eager", "channels_last", "compile")


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _records(bench: str, contenders: list[Contender], times: dict[str, list[float]],
             flops_nominal: int, flops_exact: int, peaks: dict) -> list[dict]:
    records = []
    for c in contenders:
        seconds = timing.median(times[c.name])
        rate = c.config["num"] / seconds
        peak_gflops = peaks[(c.config["devices"] if c.config["framework"] == "jsynth" else "all",
                             c.config["dtype"])]
        achieved, achieved_exact = flops_nominal * rate / 1e9, flops_exact * rate / 1e9
        records.append({
            "bench": bench, **c.config, "samples_per_s": round(rate, 2),
            "compile_s": round(c.compile_s, 3), "seconds_median": round(seconds, 4),
            "seconds_all": [round(t, 4) for t in times[c.name]],
            "flops_per_sample": flops_nominal, "flops_per_sample_exact": flops_exact,
            "achieved_gflops": round(achieved, 2), "achieved_gflops_exact": round(achieved_exact, 2),
            "peak_gflops": round(peak_gflops, 2), "mfu": round(achieved / peak_gflops, 4),
            "mfu_exact": round(achieved_exact / peak_gflops, 4)})
    return records


def _summary(bench: str, arch: str, batch_size: int, records: list[dict]) -> dict | None:
    """Best jsynth against best PyTorch: float32 against float32, and fastest against fastest."""
    def best(framework, dtype=None):
        rows = [r for r in records if r["framework"] == framework and dtype in (None, r["dtype"])]
        return max(rows, key=lambda r: r["samples_per_s"]) if rows else None

    out = {"bench": f"{bench}-summary", "arch": arch, "batch_size": batch_size}
    for label, dtype in (("float32", "float32"), ("fastest", None)):
        j, t = best("jsynth", dtype), best("torch", dtype)
        if j is None or t is None:
            continue
        out[label] = {"jsynth": f"{j['mode']} {j['dtype']} d{j['devices']}", "jsynth_samples_per_s": j["samples_per_s"],
                      "torch": f"{t['mode']} {t['dtype']}", "torch_samples_per_s": t["samples_per_s"],
                      "ratio": round(j["samples_per_s"] / t["samples_per_s"], 3),
                      "jsynth_mfu_exact": j["mfu_exact"]}
    return out if len(out) > 3 else None


def _peaks(devices: Iterable[int], dtypes: Iterable[str], size: int) -> dict:
    import jax

    every = len(jax.devices())
    out = {}
    for dtype in dtypes:
        for d in sorted(set(devices) | {every}):
            out[(d, dtype)] = peak.matmul_peak_gflops(d, dtype, n=size)
            _log(f"matmul peak {dtype} on {d} device(s): {out[(d, dtype)]:.1f} GFLOP/s")
        out[("all", dtype)] = out[(every, dtype)]
    return out


def _torch_modes(torch_modes, dtypes) -> list[str]:
    from jsynth.bench import torch_reference

    if not torch_reference.available():
        _log(torch_reference.MISSING)
        return []
    modes = list(torch_modes)
    if "bfloat16" in dtypes:
        modes += [m + "+bf16" for m in torch_modes if "+" not in m]
    return modes


def run_sampling(archs=("dcgan28",), batch_sizes=(256,), num: int | None = None, devices=(None,),
                 dtypes=("float32",), upsamples=("subpixel",), torch_modes=(), rounds: int = 5,
                 emit: Callable[[dict], None] | None = None, peak_size: int = 1536) -> list[dict]:
    """Times sampling for every combination; returns (and ``emit``s, as they come) the records.

    ``devices`` None means all; ``num`` None means two chunks per repetition; ``peak_size`` is
    the matrix side of the peak measurement.
    """
    import jax

    devices = [d or len(jax.devices()) for d in devices]
    peaks = _peaks(devices, dtypes, peak_size)
    modes = _torch_modes(torch_modes, dtypes) if torch_modes else []
    out = []
    for arch in archs:
        nominal, exact = flops.flops_per_sample(arch)
        for batch_size in batch_sizes:
            n = num or 2 * batch_size
            contenders = [sampling_bench.jsynth_contender(arch, batch_size, n, d, dtype, up)
                          for d in devices for dtype in dtypes
                          for up in (upsamples if arch != "mlpvae" else upsamples[:1])]
            contenders += [sampling_bench.torch_contender(arch, batch_size, n, m) for m in modes]
            _log(f"{arch} batch {batch_size}: {len(contenders)} contenders compiled, timing {rounds} rounds")
            times = timing.interleave({c.name: c.run for c in contenders}, rounds)
            records = _records("sampling", contenders, times, nominal, exact, peaks)
            if "bfloat16" in dtypes:
                err_max, err_mean = sampling_bench.max_abs_error_vs_float32(arch, min(batch_size, 256))
                for r in records:
                    if r["framework"] == "jsynth" and r["dtype"] == "bfloat16":
                        r["max_abs_err_vs_float32"], r["mean_abs_err_vs_float32"] = round(err_max, 5), round(err_mean, 6)
            summary = _summary("sampling", arch, batch_size, records)
            for record in records + ([summary] if summary else []):
                out.append(record)
                if emit:
                    emit(record)
    return out


def run_train(batch_sizes=(256,), steps: int = 4, devices=(None,), dtypes=("float32",),
              upsamples=("subpixel",), torch_modes=(), rounds: int = 5,
              emit: Callable[[dict], None] | None = None, peak_size: int = 1536,
              width: int = 64) -> list[dict]:
    """Times the dcgan28 GAN training step; records count real images per second.

    ``width`` other than 64 (not dcgan28 any more, FLOPs not rescaled) is for quick tests only.
    """
    import jax

    devices = [d or len(jax.devices()) for d in devices]
    peaks = _peaks(devices, dtypes, peak_size)
    modes = []
    if torch_modes:
        from jsynth.bench import torch_reference
        if torch_reference.available():
            modes = [m for m in torch_modes if m in ("eager", "compile")]
        else:
            _log(torch_reference.MISSING)
    nominal, exact = flops.train_flops_per_image()
    out = []
    for batch_size in batch_sizes:
        contenders = [train_bench.jsynth_contender(batch_size, steps, d, dtype, up, width=width)
                      for d in devices for dtype in dtypes for up in upsamples]
        contenders += [train_bench.torch_contender(batch_size, steps, m) for m in modes]
        _log(f"train batch {batch_size}: {len(contenders)} contenders compiled, timing {rounds} rounds")
        times = timing.interleave({c.name: c.run for c in contenders}, rounds)
        records = _add_scaling(_records("train", contenders, times, nominal, exact, peaks))
        summary = _summary("train", "dcgan28", batch_size, records)
        for record in records + ([summary] if summary else []):
            out.append(record)
            if emit:
                emit(record)
    return out


def _add_scaling(records: list[dict]) -> list[dict]:
    """Adds ``steps_per_s`` and, for jsynth, ``scaling_efficiency``: the speed-up over the fewest
    devices measured (same dtype and mode) divided by the ratio of device counts (1.0 = linear)."""
    for r in records:
        r["steps_per_s"] = round(r["samples_per_s"] / r["batch_size"], 3)
    for r in records:
        if r["framework"] != "jsynth":
            continue
        peers = [p for p in records if p["framework"] == "jsynth" and p["dtype"] == r["dtype"]
                 and p["mode"] == r["mode"]]
        base = min(peers, key=lambda p: p["devices"])
        speedup = r["samples_per_s"] / base["samples_per_s"]
        r["scaling_base_devices"] = base["devices"]
        r["scaling_efficiency"] = round(speedup / (r["devices"] / base["devices"]), 3)
    return records


def format_row(record: dict) -> str:
    """One human-readable line per record (the CLI's output without --json)."""
    if record["bench"] == "input":
        return (f"input  {record['source']:9s} b{record['batch_size']:<5d} d{record['devices']} "
                f"{record['dtype']:8s} {record['images_per_s']:10.1f} images/s  ({record['data']})")
    if record["bench"].endswith("summary"):
        parts = [f"{k}: jsynth {v['jsynth']} {v['jsynth_samples_per_s']:.0f}/s vs torch {v['torch']} "
                 f"{v['torch_samples_per_s']:.0f}/s = {v['ratio']:.2f}x"
                 for k, v in record.items() if isinstance(v, dict)]
        return f"  {record['arch']} b{record['batch_size']} " + "; ".join(parts)
    return (f"{record['framework']:6s} {record['arch']:8s} b{record['batch_size']:<5d} d{record['devices']} "
            f"{record['dtype']:8s} {record['mode']:14s} {record['samples_per_s']:10.1f}/s  "
            f"compile {record['compile_s']:6.2f}s  {record['achieved_gflops_exact']:7.1f} GFLOP/s exact "
            f"(peak {record['peak_gflops']:.0f}, mfu_exact {record['mfu_exact']:.2f})"
            + (f"  scaling {record['scaling_efficiency']:.2f} vs d{record['scaling_base_devices']}"
               if "scaling_efficiency" in record else ""))
