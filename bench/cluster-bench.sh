#!/usr/bin/env bash
# Dispatch overhead and evaluations/s, 1 and 2 workers, tiny model, one machine.
set -u
PZ=${PZ:-src/Cli/bin/Release/net10.0/prunerzero.dll}
TEXT=$(realpath ${TEXT:?set TEXT to a small text file (the figures used 60 short lines)})
COMMON="--model $(realpath models/pz-llama-tiny) --dataset $TEXT --calib $TEXT --calib-sampling stride --nsamples 2 --seqlen 64 --screen-windows 2"
CACHE="--cache /tmp/pz-cluster-bench-cache"   # for the processes that compute (workers, local searches); search --cluster refuses it
ARGS="--population 8 --iterations 40 --report-top 1 --seed 5"
OUTDIR=${OUTDIR:-/tmp/pz-cluster-bench}; mkdir -p $OUTDIR; PZ=$(realpath $PZ); cd $OUTDIR; rm -rf s1 s2 c1 c2 *.log
dotnet $PZ search $COMMON $CACHE $ARGS --batch 1 --run s1 >/dev/null 2>s1.log
dotnet $PZ worker --cluster localhost:44100 $COMMON $CACHE --name w1 > w1.log 2>&1 & W1=$!
until grep -q ready w1.log; do sleep 0.5; done
dotnet $PZ search $COMMON $ARGS --batch 1 --run c1 --cluster localhost:44100 >/dev/null 2>c1.log
dotnet $PZ worker --cluster localhost:44100 $COMMON $CACHE --name w2 > w2.log 2>&1 & W2=$!
until grep -q ready w2.log; do sleep 0.5; done
dotnet $PZ search $COMMON $ARGS --batch 2 --run c2 --cluster localhost:44100 >/dev/null 2>c2.log
dotnet $PZ search $COMMON $CACHE $ARGS --batch 2 --run s2 >/dev/null 2>s2.log
kill $W1 $W2
python3 - <<'PY'
import sqlite3, datetime
def stats(run):
    rows = sqlite3.connect(f'{run}/search.db').execute('select created_utc, screen_seconds, iteration from evaluations where iteration > 0 order by id').fetchall()
    t = [datetime.datetime.fromisoformat(r[0][:26]) for r in rows]
    span = (t[-1] - t[0]).total_seconds(); n = len(rows) - 1
    ev = sum(r[1] for r in rows[1:]) / n
    return n, span / n, ev, n / span
for run in ['s1', 'c1', 's2', 'c2']:
    n, per, ev, rate = stats(run)
    print(f'{run}: {n} evaluations, {per*1000:.0f} ms between commits, {ev*1000:.0f} ms inside the evaluation, overhead {1000*(per-ev):.0f} ms, {rate:.2f} evaluations/s')
PY
