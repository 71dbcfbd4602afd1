#!/bin/bash
cd "${WORK:-.}"  # where the runs write their logs and metrics
for rep in 1 2 3; do
  for to in default 4; do
    for b in old new; do
      BIN=$OLD_BIN; [ $b = new ] && BIN=$NEW_BIN
      if [ $to = default ]; then unset OPENBLAS_THREAD_TIMEOUT; else export OPENBLAS_THREAD_TIMEOUT=$to; fi
      OPENBLAS_NUM_THREADS=2 $BIN train --device cpu --recipe simard-2003-elastic --epochs 3 --schedule constant \
        --metrics $b-$to-r$rep.jsonl > $b-$to-r$rep.log 2>&1 || echo "fail $b $to $rep"
    done
  done
done
unset OPENBLAS_THREAD_TIMEOUT
python3 - <<'PY'
import json, statistics
for to in ("default", "4"):
    for b in ("old", "new"):
        rates, final = [], set()
        for rep in (1, 2, 3):
            L = [json.loads(l) for l in open(f"{b}-{to}-r{rep}.jsonl")]
            rates += [x["epoch_s"] for x in L if "epoch" in x]
            final.add(L[-1]["test_acc"])
        print(f"OPENBLAS_THREAD_TIMEOUT={to:8s} {b}: epoch median {statistics.median(rates):.2f} s (min {min(rates):.2f}, max {max(rates):.2f}, {len(rates)} epochs); test acc {sorted(final)}")
PY
