#!/usr/bin/env python3
"""Runs mnist_gpu and the PyTorch peer (torch_mlp.py, never committed) on the same data with the
same settings, alternating runs, and prints median training samples/s of each and their ratio.

  python3 bench/side_by_side.py --peer .peer/torch_mlp.py --python /usr/bin/python3 \
      --device cpu --batches 64,256,1024 --reps 3 --epochs 2 --json bench/results/cpu.json

Both train 784-hidden-10 on all 60000 training images (mnist_gpu with --val 0), with SGD momentum
0.9 (mnist_gpu --optimizer momentum; the peer's sgd has momentum 0.9) or Adam at a constant rate.
The figure per run is the median over its epochs of samples/s; the table shows the median over runs.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_ours(a, batch, metrics):
    cmd = [a.exe, "train", "--device", a.device, "--batch", str(batch), "--hidden", a.hidden,
           "--optimizer", "momentum" if a.optimizer == "sgd" else "adam", "--lr", str(a.lr),
           "--schedule", "constant", "--epochs", str(a.epochs), "--val", "0", "--data", a.data,
           "--metrics", metrics]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(metrics)]
    epochs = [l for l in lines if "epoch" in l]
    final = lines[-1]
    return statistics.median(e["samples_per_s"] for e in epochs), final["test_acc"]


def run_peer(a, batch):
    cmd = [a.python, a.peer, "--data", a.data, "--device", a.device, "--batch", str(batch),
           "--hidden", a.hidden, "--optimizer", a.optimizer, "--lr", str(a.lr), "--epochs", str(a.epochs)]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    epochs = [l for l in lines if "epoch" in l]
    return statistics.median(e["samples_per_s"] for e in epochs), lines[-1]["best_test_acc"], lines[-1]["torch"]


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
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in [int(b) for b in a.batches.split(",")]:
            ours, peer, acc_o, acc_p = [], [], [], []
            torch_version = "?"
            for rep in range(a.reps):  # alternate, so drift hits both alike
                s, acc = run_ours(a, batch, os.path.join(tmp, f"m{batch}_{rep}.jsonl"))
                ours.append(s); acc_o.append(acc)
                s, acc, torch_version = run_peer(a, batch)
                peer.append(s); acc_p.append(acc)
            row = {"batch": batch, "ours_samples_per_s": statistics.median(ours),
                   "peer_samples_per_s": statistics.median(peer),
                   "ratio": statistics.median(ours) / statistics.median(peer),
                   "ours_runs": ours, "peer_runs": peer, "ours_test_acc": acc_o, "peer_best_test_acc": acc_p,
                   "torch": torch_version}
            rows.append(row)
            print(f"batch {batch}: ours {row['ours_samples_per_s']:.0f} samples/s, peer {row['peer_samples_per_s']:.0f}, "
                  f"ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)
    meta = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "device": a.device, "hidden": a.hidden, "optimizer": a.optimizer, "lr": a.lr, "epochs": a.epochs,
            "reps": a.reps, "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()}
    print(f"\n{a.device}, 784-{a.hidden.replace(',', '-')}-10, {a.optimizer} lr {a.lr}, {a.epochs} epochs x {a.reps} "
          f"alternating runs, median samples/s (commit {meta['commit']})\n")
    print("| batch | mnist_gpu | PyTorch " + rows[0]["torch"] + " | ratio |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['ours_samples_per_s']:.0f} | {r['peer_samples_per_s']:.0f} | {r['ratio']:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
