#!/usr/bin/env python3
"""Runs the benchmark suite and prints the ratio table of the README's performance section.

Builds build/benchmarks/tapegrad_bench (and, with --torch, build-torch/benchmarks/torch_bench
against Debian's libtorch-dev), runs each with 5 repetitions, and compares medians measured in the
same run: tapegrad / hand-written Eigen, and tapegrad / libtorch. Peak memory of the W2 step is
measured in a process that runs W2 alone.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def build(build_dir, *flags):
    run(["cmake", "-S", ".", "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", *flags],
        stdout=subprocess.DEVNULL)
    target = "torch_bench" if "-DTAPEGRAD_BENCH_TORCH=ON" in flags else "tapegrad_bench"
    run(["cmake", "--build", build_dir, "-j", str(os.cpu_count()), "--target", target],
        stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, build_dir, "benchmarks", target)


def medians(binary):
    """Medians of 5 repetitions, each workload in a process of its own (threads left spinning by
    one benchmark, or its memory, must not touch the next)."""
    names = run([binary, "--benchmark_list_tests=true"], stdout=subprocess.PIPE,
                text=True).stdout.split()
    result = {}
    for name in names:
        out = run([binary, "--benchmark_format=json", "--benchmark_repetitions=5",
                   "--benchmark_report_aggregates_only=true",
                   f"--benchmark_filter=^{name.replace('/', '/')}$"],
                  stdout=subprocess.PIPE, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout
        for b in json.loads(out)["benchmarks"]:
            if b.get("aggregate_name") != "median":
                continue
            scale = {"us": 1.0, "ms": 1e3, "ns": 1e-3}[b["time_unit"]]
            result[b["run_name"]] = dict(b, time_us=b["real_time"] * scale)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch", action="store_true", help="also build and run against libtorch")
    args = parser.parse_args()

    tapegrad = medians(build("build"))
    torch = medians(build("build-torch", "-DTAPEGRAD_BENCH_TORCH=ON", "-DTAPEGRAD_BUILD_TESTS=OFF",
                          "-DTAPEGRAD_BUILD_EXAMPLES=OFF")) if args.torch else {}

    rows = [
        ("W1 softmax fwd+bwd, 1 thread", "W1_softmax_tapegrad/threads:1/real_time",
         "W1_softmax_handwritten", "W1_softmax_libtorch/threads:1/real_time", "≤ 1.2× hand"),
        ("W1 softmax fwd+bwd, 2 threads", "W1_softmax_tapegrad/threads:2/real_time",
         "W1_softmax_handwritten", "W1_softmax_libtorch/threads:2/real_time",
         "≤ 0.625× hand (1 thread)"),
        ("W2 MLP SGD step", "W2_mlp_step_tapegrad", "W2_mlp_step_handwritten",
         "W2_mlp_step_libtorch", "≤ 1.3× hand"),
        ("W3 chain of 1000 ops", "W3_chain_tapegrad", "W3_chain_handwritten", "W3_chain_libtorch",
         "≤ 0.15 µs/op"),
        ("W4 512² GEMM fwd+bwd", "W4_gemm_tapegrad", "W4_gemm_handwritten", "W4_gemm_libtorch",
         "≥ 0.95× hand throughput"),
        ("W5 digits MLP epoch", "W5_digits_epoch_tapegrad", None, None, "—"),
    ]
    print("| workload | tapegrad | tapegrad / hand-written Eigen | tapegrad / libtorch | target |")
    print("| --- | --- | --- | --- | --- |")
    for label, ours, hand, lib, target in rows:
        t = tapegrad[ours]["time_us"]
        shown = f"{t:,.1f} µs" if t < 1e4 else f"{t / 1e3:,.2f} ms"
        if ours.startswith("W3"):
            shown += f" ({t / 1000:.3f} µs/op)"
        if ours.startswith("W4"):
            shown += f" ({tapegrad[ours]['GFLOPs']:.0f} GFLOP/s)"
        vs_hand = f"{t / tapegrad[hand]['time_us']:.2f}×" if hand else "—"
        vs_torch = f"{t / torch[lib]['time_us']:.3f}×" if lib and lib in torch else "—"
        print(f"| {label} | {shown} | {vs_hand} | {vs_torch} | {target} |")
    print()
    print(f"W2: {tapegrad['W2_mlp_step_tapegrad']['allocs_per_step']:.0f} heap allocations per "
          f"step after warm-up; peak resident memory of a process running W2 alone: "
          f"{tapegrad['W2_mlp_step_tapegrad']['peak_rss_MiB']:.1f} MiB")


if __name__ == "__main__":
    main()
