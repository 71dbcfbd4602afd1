#!/usr/bin/env python3
"""Compares the parameters of two saved mnist_gpu models (format 1, README "Model file format")
element by element under |b - a| <= atol + rtol * |a|, and prints one JSON object:

  python3 bench/compare_models.py A.model B.model --atol 1e-5 --rtol 1e-3 [--json OUT]

Exit status 0 when the architectures match and every parameter is within the tolerance, 1 when
not, 2 when a file cannot be read. Standard library only (it runs on the GPU machine as well).
"""
import argparse, array, json, os, struct, sys, zlib


def read_model(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 44 or data[:8] != b"MNISTGPU":
        raise ValueError(f"{path}: not a mnist_gpu model file")
    version, inputs, outputs, hidden = struct.unpack_from("<IIII", data, 8)
    if version != 1:
        raise ValueError(f"{path}: model format {version}, this script reads 1")
    widths = list(struct.unpack_from(f"<{hidden}I", data, 24))
    off = 24 + 4 * hidden
    activation, loss, count = struct.unpack_from("<IIQ", data, off)
    off += 16
    if len(data) != off + 4 * count + 4:
        raise ValueError(f"{path}: {len(data)} bytes, expected {off + 4 * count + 4} for {count} parameters")
    (crc,) = struct.unpack_from("<I", data, off + 4 * count)
    if zlib.crc32(data[:off + 4 * count]) != crc:
        raise ValueError(f"{path}: checksum mismatch")
    params = array.array("f")
    params.frombytes(data[off:off + 4 * count])
    if sys.byteorder != "little":
        params.byteswap()
    return {"shape": [inputs] + widths + [outputs], "activation": activation, "loss": loss}, params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        (ha, pa), (hb, pb) = read_model(args.a), read_model(args.b)
    except (OSError, ValueError, struct.error) as e:
        print(f"compare_models: {e}", file=sys.stderr)
        return 2
    out = {"a": args.a, "b": args.b, "atol": args.atol, "rtol": args.rtol, "parameters": len(pa),
           "same_architecture": ha == hb}
    if ha == hb:
        worst, worst_i, max_abs, differ = 0.0, -1, 0.0, 0
        for i, (x, y) in enumerate(zip(pa, pb)):
            d = abs(y - x)
            if d != d:  # NaN on either side
                worst, worst_i = float("inf"), i
                break
            if d:
                differ += 1
                max_abs = max(max_abs, d)
                ratio = d / (args.atol + args.rtol * abs(x))
                if ratio > worst:
                    worst, worst_i = ratio, i
        out.update({"bit_identical": differ == 0 and worst_i < 0, "differing": differ, "max_abs_diff": max_abs,
                    "worst_ratio_to_tolerance": worst, "worst_index": worst_i})
    out["within_tolerance"] = bool(ha == hb and out["worst_ratio_to_tolerance"] <= 1.0)
    text = json.dumps(out)
    print(text)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(args.json + ".tmp", args.json)
    return 0 if out["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
