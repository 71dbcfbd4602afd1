#!/usr/bin/env python3
"""Runs mnist_gpu and the PyTorch peer (torch_mlp.py, never committed) on the same data with the
same settings, alternating runs, and prints median training samples/s of each and their ratio.

  python3 bench/side_by_side.py --peer .peer/torch_mlp.py --python /usr/bin/python3 \
      --device cpu --batches 64,256,1024 --reps 3 --epochs 2 --json bench/results/cpu.json

Both train 784-hidden-10 on all 60000 training images (mnist_gpu with --val 0), with SGD momentum
0.9 (mnist_gpu --optimizer momentum; the peer's sgd has momentum 0.9) or Adam at a constant rate.
The figure per run is the median over its epochs of samples/s; the table shows the median over runs.
--peer-threads 1,2 runs the peer at each thread count (0: PyTorch's default) and compares with the
best of them. On the GPU, --peer-variants eager,compile runs the peer as written and under
torch.compile (a variant is '+'-joined tokens: eager, compile, resident, threads=N), and
--ours-args passes extra flags to mnist_gpu (e.g. "--data-path resident"); the table shows the
ratio to every variant and to the best. Both sides test after every epoch (mnist_gpu --target) and report the training time
until the test accuracy first reaches --target (evaluation excluded); the table shows its ratio
where both reached it.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_ours(a, batch, metrics):
    cmd = [a.exe, "train", "--device", a.device, "--batch", str(batch), "--hidden", a.hidden,
           "--optimizer", "momentum" if a.optimizer == "sgd" else "adam", "--lr", str(a.lr),
           "--schedule", "constant", "--epochs", str(a.epochs), "--val", "0", "--data", a.data,
           "--metrics", metrics, "--target", str(a.target)] + a.ours_args.split()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(metrics)]
    epochs = [l for l in lines if "epoch" in l]
    final = lines[-1]
    return statistics.median(e["samples_per_s"] for e in epochs), final["test_acc"], final["train_s_to_target"]


def variant_flags(variant):
    """'threads=1+compile' -> ['--threads', '1', '--compile']; 'eager' and '0' add nothing."""
    flags = []
    for token in variant.split("+"):
        if token in ("eager", "0", "default"):
            continue
        if token in ("compile", "resident"):
            flags.append("--" + token)
        elif token.startswith("threads="):
            flags += ["--threads", str(int(token.split("=", 1)[1]))]
        elif token.isdigit():
            flags += ["--threads", token]
        else:
            sys.exit(f"side_by_side: unknown peer variant token '{token}' (eager, compile, resident, threads=N)")
    return flags


def run_peer(a, batch, variant):
    cmd = [a.python, a.peer, "--data", a.data, "--device", a.device, "--batch", str(batch),
           "--hidden", a.hidden, "--optimizer", a.optimizer, "--lr", str(a.lr), "--epochs", str(a.epochs),
           "--target", str(a.target)] + variant_flags(variant)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    epochs = [l for l in lines if "epoch" in l]
    return (statistics.median(e["samples_per_s"] for e in epochs), lines[-1]["best_test_acc"], lines[-1]["torch"],
            lines[-1]["train_s_to_target"])


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "mnist_gpu"))
    ap.add_argument("--peer", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--hidden", default="512,256")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peer-threads", default="0", help="peer thread counts to try, e.g. 1,2 (0: default)")
    ap.add_argument("--peer-variants", help="peer variants, e.g. eager,compile (overrides --peer-threads)")
    ap.add_argument("--ours-args", default="", help="extra mnist_gpu train flags, e.g. '--data-path resident'")
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--json")
    a = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in [int(b) for b in a.batches.split(",")]:
            threads = (a.peer_variants.split(",") if a.peer_variants
                       else [str(int(t)) for t in a.peer_threads.split(",")])
            ours, acc_o, tt_o = [], [], []
            peer = {t: [] for t in threads}
            acc_p = {t: [] for t in threads}
            tt_p = {t: [] for t in threads}
            torch_version = "?"
            for rep in range(a.reps):  # alternate, so drift hits both alike
                s, acc, tt = run_ours(a, batch, os.path.join(tmp, f"m{batch}_{rep}.jsonl"))
                ours.append(s); acc_o.append(acc); tt_o.append(tt)
                for t in threads:
                    s, acc, torch_version, tt = run_peer(a, batch, t)
                    peer[t].append(s); acc_p[t].append(acc); tt_p[t].append(tt)
            best_t = max(threads, key=lambda t: statistics.median(peer[t]))
            row = {"batch": batch, "ours_samples_per_s": statistics.median(ours),
                   "peer_samples_per_s": statistics.median(peer[best_t]), "peer_best_threads": best_t,
                   "peer_samples_per_s_by_threads": {str(t): statistics.median(peer[t]) for t in threads},
                   "ratio": statistics.median(ours) / statistics.median(peer[best_t]),
                   "ours_runs": ours, "peer_runs": {str(t): peer[t] for t in threads}, "ours_test_acc": acc_o,
                   "peer_best_test_acc": {str(t): acc_p[t] for t in threads},
                   "ours_s_to_target": median_or_none(tt_o), "peer_s_to_target": median_or_none(tt_p[best_t]),
                   "ours_s_to_target_runs": tt_o, "peer_s_to_target_runs": {str(t): tt_p[t] for t in threads},
                   "torch": torch_version}
            row["target_ratio"] = (row["peer_s_to_target"] / row["ours_s_to_target"]
                                   if row["ours_s_to_target"] and row["peer_s_to_target"] else None)
            rows.append(row)
            print(f"batch {batch}: ours {row['ours_samples_per_s']:.0f} samples/s, peer (threads {best_t}) "
                  f"{row['peer_samples_per_s']:.0f}, ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)
    meta = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "device": a.device, "hidden": a.hidden, "optimizer": a.optimizer, "lr": a.lr, "epochs": a.epochs,
            "target": a.target, "peer_threads": a.peer_threads, "peer_variants": a.peer_variants,
            "ours_args": a.ours_args,
            "reps": a.reps, "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()}
    print(f"\n{a.device}, 784-{a.hidden.replace(',', '-')}-10, {a.optimizer} lr {a.lr}, {a.epochs} epochs x {a.reps} "
          f"alternating runs, median samples/s (commit {meta['commit']})\n")
    fmt_s = lambda v: "not reached" if v is None else f"{v:.2f} s"
    variants = list(rows[0]["peer_samples_per_s_by_threads"]) if rows else []
    each = "".join(f" PyTorch {v} | ratio |" for v in variants) if len(variants) > 1 else ""
    print(f"| batch | mnist_gpu samples/s |{each} PyTorch {rows[0]['torch']} best (variant) | ratio | "
          f"time to {100 * a.target:g}%: mnist_gpu | PyTorch | ratio |")
    print("|---:|---:|" + "---:|---:|" * (len(variants) if len(variants) > 1 else 0) + "---:|---:|---:|---:|---:|")
    for r in rows:
        tr = "-" if r["target_ratio"] is None else f"{r['target_ratio']:.2f}x"
        cells = "".join(f" {p:.0f} | {r['ours_samples_per_s'] / p:.2f}x |"
                        for p in r["peer_samples_per_s_by_threads"].values()) if len(variants) > 1 else ""
        print(f"| {r['batch']} | {r['ours_samples_per_s']:.0f} |{cells} {r['peer_samples_per_s']:.0f} ({r['peer_best_threads']}) "
              f"| {r['ratio']:.2f}x | {fmt_s(r['ours_s_to_target'])} | {fmt_s(r['peer_s_to_target'])} | {tr} |")
    if a.json:
        tmp_json = a.json + ".tmp"
        with open(tmp_json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        os.replace(tmp_json, a.json)


if __name__ == "__main__":
    main()
