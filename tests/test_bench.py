"""Benchmark library: FLOP counts against docs/architectures.md, records, CLI, PyTorch twins.

Tiny configurations only; nothing here asserts a timing.
"""
import io
import json

import pytest

from jsynth import cli
from jsynth.bench import flops, runner, torch_reference
from jsynth.bench.command import bench_command

REQUIRED = {"bench", "arch", "batch_size", "num", "devices", "dtype", "samples_per_s", "compile_s",
            "flops_per_sample", "achieved_gflops", "peak_gflops", "mfu"}


def test_flops_equal_the_reference_document():
    assert flops.flops_per_sample("dcgan28") == (103_488_000, 74_976_384)
    assert flops.flops_per_sample("dcgan64") == (209_256_448, 181_077_504)
    assert flops.flops_per_sample("mlpvae") == (643_200, 643_200)
    nominal, exact = flops.flops_per_sample("dcgan28-disc")
    assert nominal == 20_710_144 and round(exact / 1e6, 1) == 17.4
    assert round(flops.train_flops_per_image()[0] / 1e6, 1) == 434.7
    macs = {layer.name: (layer.nominal_macs, layer.exact_macs) for layer in flops.layers("dcgan28")}
    assert macs["convT 256->128 k5 s1"] == (40_140_800, 27_557_888)
    assert macs["convT 128->64 k5 s2"] == (10_035_200, 8_388_608)
    assert macs["convT 64->1 k5 s2"] == (313_600, 287_296)
    assert [layer.exact_macs for layer in flops.layers("dcgan64")] == [
        819_200, 25_690_112, 29_491_200, 31_490_048, 3_048_192]


@pytest.mark.slow  # four timed configurations (~4 s); test_cli_bench_sampling_prints_json_lines is the quick one
def test_sampling_records_carry_the_contract_fields():
    stream = io.StringIO()
    records = bench_command("sampling", arch="mlpvae", batch_size="8,16", devices="1,2", rounds=1,
                            as_json=True, stream=stream, peak_size=64)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines == records and len(records) == 4
    for r in records:
        assert REQUIRED <= set(r)
        assert r["samples_per_s"] > 0 and r["peak_gflops"] > 0 and r["compile_s"] > 0
        assert r["mfu"] == pytest.approx(r["achieved_gflops"] / r["peak_gflops"], rel=1e-2, abs=1e-4)
    assert {(r["batch_size"], r["devices"]) for r in records} == {(b, d) for b in (8, 16) for d in (1, 2)}


@pytest.mark.slow  # two more compiles of the sampler (~3 s)
def test_bfloat16_records_state_their_error_against_float32():
    records = runner.run_sampling(["mlpvae"], [8], devices=[2], dtypes=["float32", "bfloat16"], rounds=1,
                                  peak_size=64)
    bf16 = [r for r in records if r["dtype"] == "bfloat16"]
    assert len(bf16) == 1 and 0 < bf16[0]["max_abs_err_vs_float32"] < 0.1


@pytest.mark.slow
def test_missing_torch_is_skipped_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr(torch_reference, "available", lambda: False)
    records = runner.run_sampling(["mlpvae"], [8], devices=[1], torch_modes=["eager"], rounds=1, peak_size=64)
    assert [r["framework"] for r in records] == ["jsynth"]
    assert "PyTorch is not installed" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_bench_sampling_prints_json_lines(capsys, monkeypatch):
    monkeypatch.setattr(runner.peak, "matmul_peak_gflops", lambda d, dtype, n: 1.0)  # not timed here
    assert cli.main(["bench", "sampling", "--arch", "mlpvae", "--batch-size", "8", "--num", "24",
                     "--devices", "2", "--rounds", "1", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert REQUIRED <= set(record) and record["num"] == 24 and record["devices"] == 2


@pytest.mark.slow  # compiles and times a DCGAN train step (~10 s)
def test_train_records(monkeypatch):
    monkeypatch.setattr(runner.peak, "matmul_peak_gflops", lambda d, dtype, n: 1.0)
    (record,) = runner.run_train([8], steps=1, devices=[1], rounds=1, width=4, upsamples=["dilated"])
    assert REQUIRED <= set(record) and record["bench"] == "train" and record["num"] == 8
    assert record["samples_per_s"] > 0
    assert record["steps_per_s"] == pytest.approx(record["samples_per_s"] / 8, rel=1e-2)
    assert record["scaling_efficiency"] == 1.0 and record["scaling_base_devices"] == 1


def test_scaling_efficiency_is_speedup_over_device_ratio():
    def record(framework, devices, rate, mode="subpixel"):
        return {"framework": framework, "devices": devices, "samples_per_s": rate, "batch_size": 64,
                "dtype": "float32", "mode": mode}
    records = runner._add_scaling([record("jsynth", 1, 100.0), record("jsynth", 2, 180.0),
                                   record("jsynth", 8, 400.0), record("jsynth", 2, 50.0, "dilated"),
                                   record("torch", 2, 300.0, "eager")])
    assert [r.get("scaling_efficiency") for r in records] == [1.0, 0.9, 0.5, 1.0, None]
    assert records[1]["steps_per_s"] == pytest.approx(180.0 / 64, abs=1e-3)


@pytest.mark.skipif(not torch_reference.available(), reason=torch_reference.MISSING)
def test_torch_twins_have_the_reference_parameter_counts():
    def trainable(net):
        return sum(p.numel() for p in net.parameters())
    assert trainable(torch_reference.generator("dcgan28")) == 2_305_472
    assert trainable(torch_reference.generator("dcgan64")) == 3_576_704
    assert trainable(torch_reference.generator("mlpvae")) == 322_784
    assert trainable(torch_reference.discriminator()) == 212_865
    assert torch_reference.make_sampler("dcgan64", 2)().shape == (2, 3, 64, 64)
