#!/usr/bin/env python3
"""Markdown table from a micro-benchmark JSON file (--benchmark_out=F --benchmark_out_format=json).

Each row (the median when the run had --benchmark_repetitions): time per call, GFLOP/s (products) or GB/s (memory-bound ops, 1 GB = 1e9 bytes), and
the share of the same run's ceiling: BM_sgemm_ceiling for products, BM_copy_ceiling for the rest.
Benchmarks that ended in an error are listed with their message; the exit status is 1 if any did.

    python3 bench/micro_table.py micro_cpu.json [--filter REGEX]
"""
import argparse
import json
import re
import sys

UNIT_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_file")
    ap.add_argument("--filter", default="", help="only benchmarks whose name matches this regex")
    args = ap.parse_args()
    with open(args.json_file) as f:
        doc = json.load(f)
    # With --benchmark_repetitions=N, the medians; otherwise each single run. Errors either way.
    all_runs = doc["benchmarks"]
    medians = any(b.get("aggregate_name") == "median" for b in all_runs)
    runs = [b for b in all_runs
            if b.get("error_occurred")
            or (b.get("aggregate_name") == "median" if medians else b.get("run_type", "iteration") == "iteration")]

    def rate(prefix, key):
        for b in runs:
            if b["name"].startswith(prefix) and not b.get("error_occurred") and key in b:
                return b[key]
        return None

    flops_ceiling = rate("BM_sgemm_ceiling", "FLOP/s")
    bytes_ceiling = rate("BM_copy_ceiling", "bytes_per_second")
    ctx = doc.get("context", {})
    print(f"host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs, {ctx.get('date', '?')}; "
          + ", ".join(f"{k} {ctx[k]}" for k in ("gpu", "cpu_gemm", "cublas_math") if k in ctx))
    print(f"ceilings: SGEMM {flops_ceiling / 1e9:.1f} GFLOP/s" if flops_ceiling else "ceilings: SGEMM n/a", end="")
    print(f", copy {bytes_ceiling / 1e9:.1f} GB/s" if bytes_ceiling else ", copy n/a")
    print()
    print("| benchmark | time per call (us) | GFLOP/s | GB/s | share of ceiling |")
    print("|---|---:|---:|---:|---:|")
    errors = 0
    for b in runs:
        name = re.sub(r"/(real|manual)_time$", "", re.sub(r"_median$", "", b["name"]))
        if args.filter and not re.search(args.filter, name):
            continue
        if b.get("error_occurred"):
            errors += 1
            print(f"| {name} | ERROR: {b.get('error_message', '')} | | | |")
            continue
        t_us = b["real_time"] * UNIT_US[b.get("time_unit", "ns")]
        gflops = gbs = share = ""
        if "FLOP/s" in b:
            gflops = f"{b['FLOP/s'] / 1e9:.1f}"
            if flops_ceiling:
                share = f"{b['FLOP/s'] / flops_ceiling:.0%}"
        elif "bytes_per_second" in b:
            gbs = f"{b['bytes_per_second'] / 1e9:.1f}"
            if bytes_ceiling:
                share = f"{b['bytes_per_second'] / bytes_ceiling:.0%}"
        print(f"| {name} | {t_us:.2f} | {gflops} | {gbs} | {share} |")
    if errors:
        print(f"\n{errors} benchmark(s) ended in an error", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
