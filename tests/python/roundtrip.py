#!/usr/bin/env python3
"""Models that leave mnist_gpu and come back, checked against the other side's own runtime.

1. mnist_gpu -> ONNX (both inputs: float pixels and uint8 images): onnx.checker passes, and ONNX
   Runtime gives the same digit as mnist_gpu on all 10,000 test images, probabilities within 1e-5.
2. mnist_gpu -> safetensors -> PyTorch nn.Sequential: the same digits, probabilities within 1e-5.
3. PyTorch -> safetensors (float32, and bfloat16 and float16 copies) -> `mnist_gpu import` -> `eval`:
   the test accuracy PyTorch measured, exactly, and the same digit per image.

"Same digit" allows one kind of exception, counted and printed: an image whose two most probable
classes are within 1e-6 of each other on the reference side, where two correct float32 GEMMs
summing in different orders may rank them differently. Every other disagreement fails the test.

Run by ctest (python_roundtrip) in the virtual environment tests/python/make_venv.sh makes.
Exit code 0 when every check passes, 1 otherwise.
"""
import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.checker
import onnxruntime as ort
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PROB_TOL = 1e-5  # the bound on |p_onnx - p_mnist_gpu| and |p_torch - p_mnist_gpu|
TIE = 1e-6  # top-2 probability gap below which a different digit is a float-summation tie
SCALE = np.float32(1) / np.float32(255)  # mnist_gpu's u8 -> [0, 1]: x * float32(1/255)

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def run(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        raise SystemExit(f"FAIL  mnist_gpu {' '.join(map(str, args))} exited {r.returncode}")
    return r.stderr


def mnist_gpu_eval(exe, model, data, work, tag):
    """test_acc, digits (N,) and probs (N, 10) of `mnist_gpu eval` on the CPU."""
    js, preds = work / f"{tag}.eval.json", work / f"{tag}.pred.jsonl"
    run(exe, "eval", "--model", model, "--data", data, "--device", "cpu", "--json", js, "--predictions", preds)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    digits = np.array([r["digit"] for r in rows])
    probs = np.array([r["probs"] for r in rows], dtype=np.float64)
    return json.loads(js.read_text())["test_acc"], digits, probs


def agreement(name, ref_digits, ref_probs, digits, probs, check_probs=True):
    """Per-image agreement of (digits, probs) with the reference; prints and checks it."""
    n = len(ref_digits)
    same = int((digits == ref_digits).sum())
    top2 = np.sort(ref_probs, axis=1)[:, -2:]
    ties = (digits != ref_digits) & (top2[:, 1] - top2[:, 0] < TIE)
    real = n - same - int(ties.sum())
    line = f"{name}: {same}/{n} same digit ({int(ties.sum())} float ties)"
    if check_probs:
        dp = float(np.abs(probs - ref_probs).max())
        line += f", max |dp| = {dp:.2g}"
        check(dp <= PROB_TOL, f"{name}: probabilities within {PROB_TOL:g} (max |dp| = {dp:.2g})")
    check(real == 0, line)
    return int(ties.sum())


def test_onnx(exe, model, data, work, images, labels, ref):
    ref_acc, ref_digits, ref_probs = ref
    for input_kind in ("pixels", "images"):
        path = work / f"model_{input_kind}.onnx"
        run(exe, "export", "--model", model, "--data", data, "--onnx", path, "--input", input_kind)
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        check(True, f"onnx ({input_kind}): onnx.checker.check_model(full_check=True) passes, opset "
                    f"{m.opset_import[0].version}, nodes {[n.op_type for n in m.graph.node]}")
        meta = {p.key: p.value for p in m.metadata_props}
        check(meta.get("producer") == "mnist_gpu" and meta.get("architecture") == "784-64-10"
              and abs(float(meta.get("test_acc", "nan")) - ref_acc) < 5e-7,
              f"onnx ({input_kind}): metadata {meta}")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = images.reshape(-1, 1, 28, 28) if input_kind == "images" else images.reshape(-1, 784).astype(np.float32) * SCALE
        t = time.time()
        probs, logits = sess.run(["probs", "logits"], {input_kind: feed})
        digits = logits.argmax(axis=1)
        acc = float((digits == labels).mean())
        print(f"      onnxruntime {ort.__version__}: 10000 images in {time.time() - t:.2f} s, accuracy {acc:.4f} "
              f"(mnist_gpu eval {ref_acc:.4f})")
        ties = agreement(f"onnxruntime vs mnist_gpu eval ({input_kind})", ref_digits, ref_probs, digits,
                         probs.astype(np.float64))
        right, ref_right = int((digits == labels).sum()), int(round(ref_acc * len(labels)))
        check(abs(right - ref_right) <= ties,
              f"onnx ({input_kind}): accuracy {acc:.4f} ({right}/{len(labels)}), mnist_gpu eval {ref_acc:.4f}")


def sequential(widths, activation):
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}[activation]
    layers = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(act())
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
    return torch.nn.Sequential(*layers)


def torch_predict(net, x):
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
        return logits.argmax(dim=1).numpy(), torch.softmax(logits, dim=1).double().numpy()


def test_safetensors_export(exe, model, data, work, x, ref):
    _, ref_digits, ref_probs = ref
    path = work / "model.safetensors"
    run(exe, "export", "--model", model, "--data", data, "--safetensors", path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net = sequential([int(w) for w in meta["architecture"].split("-")], meta["activation"])
    missing = net.load_state_dict(load_file(str(path)), strict=True)
    check(not missing.missing_keys and not missing.unexpected_keys,
          f"safetensors: loads into {meta['torch_module']} with strict=True (keys {list(load_file(str(path)))})")
    digits, probs = torch_predict(net, x)
    agreement("PyTorch (safetensors export) vs mnist_gpu eval", ref_digits, ref_probs, digits, probs)


def test_torch_import(exe, data, work, x_train, y_train, x_test, y_test):
    torch.manual_seed(0)
    hidden = 100
    net = sequential([784, hidden, 10], "relu")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    t = time.time()
    for _ in range(400):
        idx = torch.randint(0, len(xt), (64,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
        opt.step()
    print(f"      PyTorch {torch.__version__}: 400 Adam steps of batch 64 in {time.time() - t:.1f} s")
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    for dtype, tag in ((torch.float32, "F32"), (torch.bfloat16, "BF16"), (torch.float16, "F16")):
        stored = {k: v.to(dtype) for k, v in state.items()}
        path = work / f"torch_{tag}.safetensors"
        save_file(stored, str(path), metadata={"format": "pt"})
        # PyTorch's reference: the stored weights widened to float32, as `import` converts them.
        ref = sequential([784, hidden, 10], "relu")
        ref.load_state_dict({k: v.float() for k, v in stored.items()})
        digits, probs = torch_predict(ref, x_test)
        torch_acc = float((digits == y_test).mean())
        model = work / f"torch_{tag}.mgpu"
        run(exe, "import", "--safetensors", path, "--hidden", hidden, "--activation", "relu", "--out", model)
        acc, m_digits, m_probs = mnist_gpu_eval(exe, model, data, work, f"torch_{tag}")
        ties = agreement(f"mnist_gpu eval of the imported {tag} model vs PyTorch", digits, probs, m_digits, m_probs)
        right = int(round(acc * len(y_test)))
        torch_right = int((digits == y_test).sum())
        check(abs(right - torch_right) <= ties,
              f"PyTorch {tag} safetensors -> import -> eval: accuracy {acc:.4f} ({right}/10000), PyTorch measured "
              f"{torch_acc:.4f} ({torch_right}/10000)")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--exe", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # small matrices; more threads only spin against the other tests (ctest -j)
    data = Path(a.data)
    test_images = read_idx(data / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(data / "t10k-labels-idx1-ubyte.gz")
    x_test = test_images.reshape(-1, 784).astype(np.float32) * SCALE

    # A model trained quickly by mnist_gpu, and its own per-image predictions (the reference).
    model = work / "model.mgpu"
    run(a.exe, "train", "--data", data, "--device", "cpu", "--hidden", 64, "--epochs", 1, "--limit", 10000,
        "--val", 0, "--seed", 1, "--save", model)
    ref = mnist_gpu_eval(a.exe, model, data, work, "mnist_gpu")
    print(f"      mnist_gpu model 784-64-10 relu: eval test accuracy {ref[0]:.4f}")

    test_onnx(a.exe, model, data, work, test_images, test_labels, ref)
    test_safetensors_export(a.exe, model, data, work, x_test, ref)
    train_images = read_idx(data / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(data / "train-labels-idx1-ubyte.gz")
    test_torch_import(a.exe, data, work, train_images.reshape(-1, 784).astype(np.float32) * SCALE, train_labels,
                      x_test, test_labels)

    if failures:
        print(f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))
        return 1
    print("all round trips agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
