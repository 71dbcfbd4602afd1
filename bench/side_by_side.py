#!/usr/bin/env python3
"""Runs mnist_gpu and its peers (the PyTorch trainer torch_mlp.py and the JAX trainer jax_mlp.py,
never committed) on the same data with the same settings, alternating runs, and prints median
training samples/s of each, their ratios, and the training time to a target test accuracy.

  python3 bench/side_by_side.py --peer .peer/torch_mlp.py --python /usr/bin/python3 \\
      --device cpu --batches 64,256,1024 --reps 3 --epochs 2 --json bench/results/cpu.json
  python3 bench/side_by_side.py --device cuda --peer .gpu/peers/torch_mlp.py --jax-peer .gpu/peers/jax_mlp.py \\
      --peer-variants eager,graph,jax,jax+highest --batches 256:3:10,64:1:3 --deadline-s 240 --json sbs.json

Both sides train 784-hidden-10 on all 60000 training images (mnist_gpu with --val 0), with SGD
momentum 0.9 (mnist_gpu --optimizer momentum; the peers' sgd has momentum 0.9) or Adam, at a
constant rate. The figure per run is the median over its epochs of samples/s; the table shows the
median over runs. Both test after every epoch and report the training time until the test
accuracy first reaches --target (evaluation excluded; a peer's first epoch includes its
compilation).

--batches takes B or B:REPS:EPOCHS items (plain B uses --reps and --epochs), run in the order given.
A peer variant is '+'-joined tokens. PyTorch: eager, compile, resident, graph (the whole step in
one CUDA graph), threads=N (or N). JAX: jax, with highest (strict FP32 matmuls; default lets XLA
use TF32) or high. --peer-threads 1,2 is shorthand for the variants 1,2. --ours-args passes extra
flags to mnist_gpu (e.g. "--data-path resident").

Every run has a time limit (--run-timeout); a run that fails or times out is recorded with its
error and the others go on. With --deadline-s, runs that would start after that many seconds are
skipped and recorded as missing. The JSON (--json) is rewritten atomically after every run, so an
interrupted session keeps what finished. Exit status: 0 when every planned run succeeded, 1 when
any failed, 3 when none failed but some were skipped by the deadline.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_batches(text, reps, epochs):
    """'256:3:10,64' -> [(256, 3, 10), (64, reps, epochs)]."""
    plan = []
    for item in text.split(","):
        parts = item.split(":")
        if len(parts) not in (1, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
            sys.exit(f"side_by_side: --batches item '{item}' is not B or B:REPS:EPOCHS (positive whole numbers)")
        b = int(parts[0])
        plan.append((b, int(parts[1]), int(parts[2])) if len(parts) == 3 else (b, reps, epochs))
    return plan


def peer_command(a, variant, batch, epochs):
    """The peer script and its flags for one variant, e.g. 'graph' or 'jax+highest'."""
    tokens = variant.split("+")
    jax = "jax" in tokens
    script = a.jax_peer if jax else a.peer
    if not script:
        sys.exit(f"side_by_side: variant '{variant}' needs {'--jax-peer' if jax else '--peer'}")
    flags = []
    for token in tokens:
        if token in ("eager", "0", "default", "jax"):
            continue
        if jax and token in ("high", "highest"):
            flags += ["--precision", token]
        elif not jax and token in ("compile", "resident", "graph"):
            flags.append("--" + token)
        elif not jax and token.startswith("threads="):
            flags += ["--threads", str(int(token.split("=", 1)[1]))]
        elif not jax and token.isdigit():
            flags += ["--threads", token]
        else:
            sys.exit(f"side_by_side: unknown token '{token}' in peer variant '{variant}' (PyTorch: eager, compile, "
                     "resident, graph, threads=N; JAX: jax, high, highest)")
    cmd = [a.python, script, "--data", a.data, "--batch", str(batch), "--hidden", a.hidden,
           "--optimizer", a.optimizer, "--lr", str(a.lr), "--epochs", str(epochs), "--target", str(a.target)]
    if not jax:
        cmd += ["--device", a.device]  # the JAX peer runs on JAX's default device
    return cmd + flags


def run_ours(a, batch, epochs, metrics):
    cmd = [a.exe, "train", "--device", a.device, "--batch", str(batch), "--hidden", a.hidden,
           "--optimizer", "momentum" if a.optimizer == "sgd" else "adam", "--lr", str(a.lr),
           "--schedule", "constant", "--epochs", str(epochs), "--val", "0", "--data", a.data,
           "--metrics", metrics, "--target", str(a.target)] + a.ours_args.split()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=a.run_timeout)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"mnist_gpu exited {p.returncode}: {p.stderr.strip()[-600:]}")
    lines = [json.loads(l) for l in open(metrics)]
    epochs_ = [l for l in lines if "epoch" in l]
    final = lines[-1]
    return {"samples_per_s": statistics.median(e["samples_per_s"] for e in epochs_), "test_acc": final["test_acc"],
            "s_to_target": final["train_s_to_target"], "wall_s": wall, "kernels_per_step": final.get("kernels_per_step"),
            "epochs_samples_per_s": [round(e["samples_per_s"]) for e in epochs_]}


def run_peer(a, batch, epochs, variant):
    cmd = peer_command(a, variant, batch, epochs)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.run_timeout)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{os.path.basename(cmd[1])} exited {p.returncode}: {p.stderr.strip()[-600:]}")
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    epochs_ = [l for l in lines if "epoch" in l]
    return {"samples_per_s": statistics.median(e["samples_per_s"] for e in epochs_),
            "test_acc": lines[-1]["best_test_acc"], "s_to_target": lines[-1]["train_s_to_target"], "wall_s": wall,
            "version": lines[-1]["torch"], "epochs_samples_per_s": [e["samples_per_s"] for e in epochs_]}


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(batch, variants, runs):
    """One table row from the runs of one batch size (failed and missing runs left out)."""
    ok = lambda who: [r for r in runs if r["who"] == who and "error" not in r and not r.get("missing")]
    ours = ok("mnist_gpu")
    count = lambda who, what: sum(1 for r in runs if r["who"] == who and what(r))
    failed = lambda who: count(who, lambda r: "error" in r)
    missing = lambda who: count(who, lambda r: r.get("missing"))
    row = {"batch": batch, "ours_runs": [r["samples_per_s"] for r in ours],
           "failed_runs": {w: failed(w) for w in ["mnist_gpu"] + variants if failed(w)},
           "missing_runs": {w: missing(w) for w in ["mnist_gpu"] + variants if missing(w)},
           "ours_samples_per_s": median_or_none([r["samples_per_s"] for r in ours]),
           "ours_test_acc": [r["test_acc"] for r in ours],
           "ours_s_to_target": median_or_none([r["s_to_target"] for r in ours]),
           "ours_s_to_target_runs": [r["s_to_target"] for r in ours],
           "kernels_per_step": median_or_none([r.get("kernels_per_step") for r in ours]),
           "peer_samples_per_s_by_variant": {}, "peer_runs": {}, "peer_best_test_acc": {},
           "peer_s_to_target_by_variant": {}, "peer_s_to_target_runs": {}, "peer_version": {}}
    for v in variants:
        rs = ok(v)
        row["peer_runs"][v] = [r["samples_per_s"] for r in rs]
        row["peer_samples_per_s_by_variant"][v] = median_or_none([r["samples_per_s"] for r in rs])
        row["peer_best_test_acc"][v] = [r["test_acc"] for r in rs]
        row["peer_s_to_target_by_variant"][v] = median_or_none([r["s_to_target"] for r in rs])
        row["peer_s_to_target_runs"][v] = [r["s_to_target"] for r in rs]
        row["peer_version"][v] = rs[0]["version"] if rs else None
    measured = [v for v in variants if row["peer_samples_per_s_by_variant"][v]]
    best = max(measured, key=lambda v: row["peer_samples_per_s_by_variant"][v]) if measured else None
    row["peer_best_variant"] = best
    row["peer_samples_per_s"] = row["peer_samples_per_s_by_variant"][best] if best else None
    row["peer_s_to_target"] = row["peer_s_to_target_by_variant"][best] if best else None
    row["ratio"] = (row["ours_samples_per_s"] / row["peer_samples_per_s"]
                    if row["ours_samples_per_s"] and row["peer_samples_per_s"] else None)
    row["target_ratio"] = (row["peer_s_to_target"] / row["ours_s_to_target"]
                           if row["ours_s_to_target"] and row["peer_s_to_target"] else None)
    return row


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def print_table(a, meta, rows, variants):
    print(f"\n{a.device}, 784-{a.hidden.replace(',', '-')}-10, {a.optimizer} lr {a.lr}, alternating runs, "
          f"median samples/s (commit {meta['commit']})\n")
    secs = lambda v: "not reached" if v is None else f"{v:.2f} s"
    ratio = lambda x, y: f"{x / y:.2f}x" if x and y else "-"

    def absent(r, who):  # why a side has no figure: a failed run, else the deadline
        return "FAILED" if r["failed_runs"].get(who) else "MISSING"
    print("| batch | runs | mnist_gpu samples/s | " + "".join(f"{v} | ratio | " for v in variants) +
          f"time to {100 * a.target:g}%: mnist_gpu | " + "".join(f"{v} | " for v in variants).rstrip() )
    print("|---:|---:|---:|" + "---:|---:|" * len(variants) + "---:|" + "---:|" * len(variants))
    for r in rows:
        num = lambda v, who: absent(r, who) if v is None else f"{v:.0f}"
        cells = "".join(f" {num(r['peer_samples_per_s_by_variant'][v], v)} | "
                        f"{ratio(r['ours_samples_per_s'], r['peer_samples_per_s_by_variant'][v])} |" for v in variants)
        tts = "".join(f" {secs(r['peer_s_to_target_by_variant'][v]) if r['peer_runs'][v] else absent(r, v)} |"
                      for v in variants)
        ours_tt = secs(r["ours_s_to_target"]) if r["ours_runs"] else absent(r, "mnist_gpu")
        print(f"| {r['batch']} | {len(r['ours_runs'])} | {num(r['ours_samples_per_s'], 'mnist_gpu')} |{cells} "
              f"{ours_tt} |{tts}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "mnist_gpu"))
    ap.add_argument("--peer", help="torch_mlp.py (PyTorch variants)")
    ap.add_argument("--jax-peer", help="jax_mlp.py (the 'jax' variants)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="64,256,1024", help="B or B:REPS:EPOCHS items, comma-separated")
    ap.add_argument("--hidden", default="512,256")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peer-threads", default="0", help="PyTorch thread counts to try, e.g. 1,2 (0: default)")
    ap.add_argument("--peer-variants", help="peer variants, e.g. eager,graph,jax,jax+highest (overrides --peer-threads)")
    ap.add_argument("--ours-args", default="", help="extra mnist_gpu train flags, e.g. '--data-path resident'")
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--run-timeout", type=float, default=300, help="seconds one run may take")
    ap.add_argument("--deadline-s", type=float, help="start no run after this many seconds; later runs are missing")
    ap.add_argument("--json")
    a = ap.parse_args()

    start = time.monotonic()
    plan = parse_batches(a.batches, a.reps, a.epochs)
    variants = (a.peer_variants.split(",") if a.peer_variants else [str(int(t)) for t in a.peer_threads.split(",")])
    for v in variants:
        peer_command(a, v, 1, 1)  # unknown tokens and missing scripts fail before anything runs
    meta = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "device": a.device, "hidden": a.hidden, "optimizer": a.optimizer, "lr": a.lr, "target": a.target,
            "plan": [{"batch": b, "reps": r, "epochs": e} for b, r, e in plan], "peer_variants": variants,
            "ours_args": a.ours_args, "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()}
    runs, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for batch, reps, epochs in plan:
            for rep in range(reps):  # alternate, so drift hits every side alike
                for who in ["mnist_gpu"] + variants:
                    run = {"batch": batch, "epochs": epochs, "rep": rep, "who": who}
                    if a.deadline_s is not None and time.monotonic() - start > a.deadline_s:
                        run["missing"] = "deadline"
                    else:
                        try:
                            run.update(run_ours(a, batch, epochs, os.path.join(tmp, f"m{batch}_{rep}.jsonl"))
                                       if who == "mnist_gpu" else run_peer(a, batch, epochs, who))
                        except (subprocess.TimeoutExpired, RuntimeError, OSError, ValueError, KeyError) as e:
                            run["error"] = repr(e)[-800:]
                    runs.append(run)
                    status = run.get("missing") or ("error" if "error" in run else f"{run['samples_per_s']:.0f} samples/s")
                    print(f"batch {batch} rep {rep} {who}: {status}", file=sys.stderr, flush=True)
                    rows = [summarise(b, variants, [r for r in runs if r["batch"] == b]) for b, _, _ in plan]
                    if a.json:
                        write_json(a.json, {"meta": meta, "rows": rows, "runs": runs})
    print_table(a, meta, rows, variants)
    if any("error" in r for r in runs):
        return 1
    return 3 if any(r.get("missing") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
