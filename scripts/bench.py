#!/usr/bin/env python3
"""Runs the benchmark suite and prints the ratio table of the README's performance section.

Builds build/benchmarks/tapegrad_bench (and, with --torch, build-torch/benchmarks/torch_bench
against Debian's libtorch-dev), runs each with 5 repetitions, and compares medians measured in the
same run: tapegrad / hand-written Eigen, and tapegrad / libtorch. Peak memory of the W2 step is
measured in a process that runs W2 alone.

Then the threads table: W1, W2 and W5 with the default thread count divided by one thread, on an
idle machine, with one core busy and with every core busy (`tapegrad_bench --busy=N` spins N
other processes). Other work on the machine moves every timing, so the configurations are
interleaved round by round and each ratio is the median of the rounds' ratios, each round
measuring both thread counts back to back under the same load.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# benchmarks/workloads.h's kGptFlops, in GFLOP.
GPT_GFLOP = 3 * (4 * (24 * 12 * 64 * 128 * 128 + 4 * 12 * 64 * 64 * 128) + 2 * 12 * 64 * 128 * 65) / 1e9


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


def timing_us(binary, name, *flags):
    """Median real time of one benchmark, in µs, and its JSON entry."""
    out = run([binary, "--benchmark_format=json", f"--benchmark_filter=^{name}$", *flags],
              stdout=subprocess.PIPE, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout
    entries = [b for b in json.loads(out)["benchmarks"]
               if b.get("aggregate_name", "median") == "median"]
    scale = {"us": 1.0, "ms": 1e3, "ns": 1e-3}[entries[0]["time_unit"]]
    return entries[0]["real_time"] * scale, entries[0]


def medians(binary):
    """Medians of 5 repetitions, each workload in a process of its own (threads left spinning by
    one benchmark, or its memory, must not touch the next)."""
    names = run([binary, "--benchmark_list_tests=true"], stdout=subprocess.PIPE,
                text=True).stdout.split()
    result = {}
    for name in names:
        if name.startswith("Threshold_"):
            continue  # measured when a threshold is set, not part of the table
        time_us, entry = timing_us(binary, name, "--benchmark_repetitions=5",
                                   "--benchmark_report_aggregates_only=true")
        result[name] = dict(entry, time_us=time_us)
    return result


THREADED = [("W1 softmax fwd+bwd", "W1_softmax_tapegrad"), ("W2 MLP SGD step", "W2_mlp_step_tapegrad"),
            ("W5 digits MLP epoch", "W5_digits_epoch_tapegrad"),
            ("W6 digits CNN Adam step", "W6_cnn_step_tapegrad")]


def threads_table(binary, rounds):
    """Default threads ÷ 1 thread for THREADED, idle, one core busy and every core busy."""
    cores = len(os.sched_getaffinity(0))
    loads = [("idle", 0), ("one core busy", 1), (f"all {cores} cores busy", cores)]
    ratios = {(w, busy): [] for _, w in THREADED for _, busy in loads}
    times = {(w, busy, t): [] for _, w in THREADED for _, busy in loads for t in (1, 0)}
    load_before = os.getloadavg()
    for _ in range(rounds):
        for _, busy in loads:
            for _, workload in THREADED:
                pair = {}
                for threads in (1, 0):
                    pair[threads], _ = timing_us(
                        binary, f"{workload}/threads:{threads}/real_time", f"--busy={busy}")
                    times[(workload, busy, threads)].append(pair[threads])
                ratios[(workload, busy)].append(pair[0] / pair[1])
    load_after = os.getloadavg()
    print(f"Default threads ({cores} here) ÷ 1 thread, median of {rounds} interleaved rounds "
          f"(load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; the busy "
          f"processes add their own):")
    print()
    print("| workload | " + " | ".join(label for label, _ in loads) + " |")
    print("| --- |" + " --- |" * len(loads))
    for label, workload in THREADED:
        cells = []
        for _, busy in loads:
            one = statistics.median(times[(workload, busy, 1)])
            shown = f"{one:,.0f} µs" if one < 1e4 else f"{one / 1e3:,.1f} ms"
            cells.append(f"{statistics.median(ratios[(workload, busy)]):.2f}× (1 thread {shown})")
        print(f"| {label} | " + " | ".join(cells) + " |")


def package_version(name):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    return out.stdout if out.returncode == 0 and out.stdout else "not installed"


def machine(build_dir, torch):
    """What the figures were measured on, printed above them: they mean nothing without it."""
    cpu, flags = "unknown", set()
    with open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            if key.strip() == "flags":
                flags = set(value.split())
                break
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw") if f in flags]
    cache = {}
    with open(os.path.join(ROOT, build_dir, "CMakeCache.txt")) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            cache[key.split(":")[0]] = value
    with open(os.path.join(ROOT, build_dir, "benchmarks/CMakeFiles/tapegrad_bench.dir/flags.make")) as f:
        workaround = ("; -fno-tree-slp-vectorize (the compiler's constant-vector bug, README)"
                      if "-fno-tree-slp-vectorize" in f.read() else "")
    print(f"Machine: {cpu}, {len(os.sched_getaffinity(0))} CPUs for this process, SIMD: "
          f"{' '.join(simd)}; load average {os.getloadavg()[0]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"Build: g++ {package_version('g++-12')}, {cache.get('CMAKE_BUILD_TYPE', '?')}, "
          f"TAPEGRAD_NATIVE={cache.get('TAPEGRAD_NATIVE', '?')} (-O3 -march=native), "
          f"Eigen {package_version('libeigen3-dev')} (its own GEMM: TAPEGRAD_USE_OPENBLAS="
          f"{cache.get('TAPEGRAD_USE_OPENBLAS', 'OFF')}){workaround}")
    print("Threads: '1 thread' rows set tg::set_num_threads(1) (libtorch: torch::set_num_threads(1)); "
          f"'default threads' leave tapegrad's default ({len(os.sched_getaffinity(0))} here) and run "
          "libtorch with 2; OPENBLAS_NUM_THREADS=1")
    if torch:
        print(f"libtorch {package_version('libtorch-dev')} with OpenBLAS "
              f"{package_version('libopenblas0-pthread')}; PyTorch {package_version('python3-torch')}")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch", action="store_true", help="also build and run against libtorch")
    parser.add_argument("--build-dir", default="build", help="build directory of tapegrad_bench")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the threads table")
    parser.add_argument("--threads-only", action="store_true", help="only the threads table")
    args = parser.parse_args()

    binary = build(args.build_dir)
    machine(args.build_dir, args.torch)
    if args.threads_only:
        threads_table(binary, args.rounds)
        return
    tapegrad = medians(binary)
    torch = medians(build("build-torch", "-DTAPEGRAD_BENCH_TORCH=ON", "-DTAPEGRAD_BUILD_TESTS=OFF",
                          "-DTAPEGRAD_BUILD_EXAMPLES=OFF")) if args.torch else {}

    rows = [
        ("W1 softmax fwd+bwd, 1 thread", "W1_softmax_tapegrad/threads:1/real_time",
         "W1_softmax_handwritten", "W1_softmax_libtorch/threads:1/real_time", "≤ 1.2× hand"),
        ("W1 softmax fwd+bwd, default threads", "W1_softmax_tapegrad/threads:0/real_time",
         "W1_softmax_handwritten", "W1_softmax_libtorch/threads:2/real_time",
         "≤ 0.625× hand (1 thread)"),
        ("W2 MLP SGD step", "W2_mlp_step_tapegrad/threads:1/real_time", "W2_mlp_step_handwritten",
         "W2_mlp_step_libtorch", "≤ 1.3× hand"),
        ("W3 chain of 1000 ops", "W3_chain_tapegrad", "W3_chain_handwritten", "W3_chain_libtorch",
         "≤ 0.15 µs/op"),
        ("W4 512² GEMM fwd+bwd", "W4_gemm_tapegrad", "W4_gemm_handwritten", "W4_gemm_libtorch",
         "≥ 0.95× hand throughput"),
        ("W5 digits MLP epoch, 1 thread", "W5_digits_epoch_tapegrad/threads:1/real_time", None,
         "W5_digits_epoch_libtorch/threads:1/real_time", "—"),
        ("W6 digits CNN Adam step, batch 64, 1 thread", "W6_cnn_step_tapegrad/threads:1/real_time",
         "W6_cnn_step_handwritten", "W6_cnn_step_libtorch/threads:1/real_time",
         "≤ 1.3× hand, ≤ 0.5× libtorch"),
        ("W6, default threads", "W6_cnn_step_tapegrad/threads:0/real_time",
         "W6_cnn_step_handwritten", "W6_cnn_step_libtorch/threads:2/real_time", "—"),
        ("conv2d [32,64,32,32] 3×3 fwd+bwd, 1 thread", "Conv2d_large_tapegrad/threads:1/real_time",
         "Conv2d_large_handwritten", "Conv2d_large_libtorch/threads:1/real_time", "—"),
        ("conv2d, default threads", "Conv2d_large_tapegrad/threads:0/real_time",
         "Conv2d_large_handwritten", "Conv2d_large_libtorch/threads:2/real_time", "—"),
        ("W7 GPT training step (batch 12, context 64), 1 thread",
         "W7_gpt_step_tapegrad/threads:1/real_time", None, "W7_gpt_step_libtorch/threads:1/real_time",
         "≤ 0.77× libtorch"),
        ("W7, default threads", "W7_gpt_step_tapegrad/threads:0/real_time", None,
         "W7_gpt_step_libtorch/threads:2/real_time", "faster than 1 thread"),
        ("W8 LSTM step (sequence_prediction), 1 thread", "W8_lstm_step_tapegrad/threads:1/real_time",
         None, "W8_lstm_step_libtorch/threads:1/real_time", "—"),
        ("W8, default threads", "W8_lstm_step_tapegrad/threads:0/real_time", None,
         "W8_lstm_step_libtorch/threads:2/real_time", "—"),
        ("causal attention [12,4,64,32] fwd+bwd", "Attention_tapegrad/T:64", None,
         "Attention_libtorch/T:64", "—"),
        ("causal attention [12,4,256,32] fwd+bwd", "Attention_tapegrad/T:256", None,
         "Attention_libtorch/T:256", "—"),
    ]
    print("| workload | tapegrad | tapegrad / hand-written Eigen | tapegrad / libtorch | target |")
    print("| --- | --- | --- | --- | --- |")
    for label, ours, hand, lib, target in rows:
        t = tapegrad[ours]["time_us"]
        shown = f"{t:,.1f} µs" if t < 1e4 else f"{t / 1e3:,.2f} ms"
        if ours.startswith("W3"):
            shown += f" ({t / 1000:.3f} µs/op)"
        if ours.startswith(("W4", "Conv2d")):
            shown += f" ({tapegrad[ours]['GFLOPs']:.0f} GFLOP/s)"
        vs_hand = f"{t / tapegrad[hand]['time_us']:.2f}×" if hand else "—"
        vs_torch = f"{t / torch[lib]['time_us']:.3f}×" if lib and lib in torch else "—"
        print(f"| {label} | {shown} | {vs_hand} | {vs_torch} | {target} |")
    print()
    w2 = tapegrad["W2_mlp_step_tapegrad/threads:1/real_time"]
    print(f"W2: {w2['allocs_per_step']:.0f} heap allocations per step after warm-up; peak resident "
          f"memory of a process running W2 alone: {w2['peak_rss_MiB']:.1f} MiB")
    w6 = tapegrad["W6_cnn_step_tapegrad/threads:1/real_time"]
    print(f"W6: {w6['allocs_per_step']:.0f} heap allocations per step after warm-up "
          f"(hand-written: {tapegrad['W6_cnn_step_handwritten']['allocs_per_step']:.0f}); peak "
          f"resident memory {w6['peak_rss_MiB']:.1f} MiB")
    w7 = tapegrad["W7_gpt_step_tapegrad/threads:1/real_time"]
    peak = tapegrad["W4_gemm_handwritten"]["GFLOPs"]
    print(f"W7: {w7['GFLOPs']:.1f} GFLOP/s over the step's {GPT_GFLOP:.2f} GFLOP of matrix products; "
          f"at the single-thread GEMM peak measured in this run (W4 hand-written, {peak:.1f} "
          f"GFLOP/s) the products alone take {GPT_GFLOP / peak * 1e3:.1f} ms: the step is "
          f"{w7['time_us'] / 1e3 / (GPT_GFLOP / peak * 1e3):.2f}× that; "
          f"{w7['allocs_per_step']:.0f} heap allocations per step after warm-up; peak resident "
          f"memory {w7['peak_rss_MiB']:.1f} MiB")
    w8 = tapegrad["W8_lstm_step_tapegrad/threads:1/real_time"]
    print(f"W8: {w8['allocs_per_step']:.0f} heap allocations per step after warm-up; peak resident "
          f"memory {w8['peak_rss_MiB']:.1f} MiB")
    if args.torch:
        pytorch = json.loads(run(["python3", "scripts/bench_pytorch.py"], stdout=subprocess.PIPE,
                                 env={**os.environ, "PATH": "/usr/bin:" + os.environ["PATH"]})
                             .stdout)
        for workload, ours in (("W5", "W5_digits_epoch_tapegrad/threads:{}/real_time"),
                               ("W7", "W7_gpt_step_tapegrad/threads:{}/real_time"),
                               ("W8", "W8_lstm_step_tapegrad/threads:{}/real_time")):
            for threads, arg in (("1", "1"), ("2", "0")):
                ms = pytorch[workload][threads]
                mine = tapegrad[ours.format(arg)]["time_us"] / 1e3
                print(f"{workload} PyTorch {pytorch['torch']} from Python, {threads} thread(s): "
                      f"{ms:,.3f} ms; tapegrad {mine:,.3f} ms = {mine / ms:.3f}× PyTorch's time")
    print()
    threads_table(binary, args.rounds)


if __name__ == "__main__":
    main()
