#!/usr/bin/env bash
# One GPU session for issue 16, run once on a GPU machine with the system python3 (no venv, no internet):
#   bench/gpu_session.sh OUTDIR [key=value ...]     # key=value: extra overrides of the tiny model's run
# Phase A (~2 min): bench/train_speed.py on the GPU, beside bisegunet-make-dataset (the tiny run's
#   scenes) then bench/data_speed.py on the CPU cores (the GPU bench's Python needs one core).
# Phase B (~4.5 min alone; e.g. iters_per_epoch=150 shortens it): the tiny model's run (shipped when this
#   was written; config/train/tiny_synthetic_gpu.yaml) in the background, beside the seed study of bench/training.py
#   (the HOOK line below; both share the GPU, which the tiny model leaves mostly idle).
# Phase C (~2 min, skipped with GPU_LATENCY=0): bench/gpu_latency.py, the models of bench/pareto.py
#   (LR-ASPP, DeepLabV3, fast, tiny, small) in torch FP16 with CUDA graphs, batch 1 and 4, 512x1024
#   and 1024x2048, alone on the GPU: gpu_latency.json and .md.
# OUTDIR gets the few files to copy back: train_speed.json, data_speed.json, gpu_latency.json, best.pt,
# metrics.jsonl, curves.png and session.log (every log, the benches' Markdown included, and the timings).
# Environment: PYTHON (default python3), SCENES (pre-rendered training scenes, default 16000),
# RENDER_WORKERS (default 12), TRAIN_SPEED_ARGS / DATA_SPEED_ARGS (extra bench arguments), GPU_LATENCY (0: no phase C).
set -u
OUT=${1:?usage: bench/gpu_session.sh OUTDIR [key=value ...]}
shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT/logs" && OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
SCENES=${SCENES:-16000}
RENDER_WORKERS=${RENDER_WORKERS:-12}
START=$(date +%s)
stamp() { echo "[gpu_session +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/logs/00_session.log"; }

# setup.py installs training/ as bisegunet_training: without an install, a link on PYTHONPATH does it
mkdir -p "$OUT/pypath" && ln -sfn "$REPO/training" "$OUT/pypath/bisegunet_training"
export PYTHONPATH="$REPO:$OUT/pypath${PYTHONPATH:+:$PYTHONPATH}"
cd "$REPO" || exit 1

stamp "checking imports with $PY ($(command -v "$PY"))"
"$PY" - <<'PYEOF' 2>&1 | tee -a "$OUT/logs/00_session.log"
import importlib.util, sys
need = {"torch": "torch (with CUDA)", "numpy": "numpy", "cv2": "opencv-python-headless", "yaml": "PyYAML",
        "tqdm": "tqdm"}
soft = {"matplotlib": "matplotlib (only curves.png; the run fails at its very end without it, after best.pt)"}
missing = [pip for module, pip in need.items() if importlib.util.find_spec(module) is None]
for module, pip in soft.items():
    if importlib.util.find_spec(module) is None:
        print(f"WARNING missing optional package: {pip}")
if missing:
    print("MISSING required packages: " + ", ".join(missing) + " (pip install them, then rerun)")
    sys.exit(1)
import torch
if not torch.cuda.is_available():
    print(f"MISSING CUDA: torch {torch.__version__} sees no GPU")
    sys.exit(1)
import bisegunet_training.train, bisegunet_training.make_dataset, bench.train_speed, bench.data_speed  # noqa
import bench.gpu_latency  # noqa
print(f"ok: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { stamp "imports failed: nothing run"; exit 1; }

stamp "phase A: train_speed on the GPU | make-dataset, then data_speed on the CPU"
"$PY" -m bench.train_speed --device cuda --out "$OUT/train_speed" ${TRAIN_SPEED_ARGS:-} \
    > "$OUT/logs/10_train_speed.log" 2>&1 &
SPEED=$!
( "$PY" -m bisegunet_training.make_dataset "$OUT/scenes" --train "$SCENES" --val 200 --test 200 --height 128 --width 256 \
      --workers "$RENDER_WORKERS" && stamp "scenes rendered" &&
  "$PY" -m bench.data_speed --out "$OUT/data_speed" --render-workers "$RENDER_WORKERS" ${DATA_SPEED_ARGS:-} \
) > "$OUT/logs/20_data.log" 2>&1
DATA_RC=$?
wait $SPEED; SPEED_RC=$?
stamp "phase A done: train_speed exit $SPEED_RC, make-dataset/data_speed exit $DATA_RC"
[ -d "$OUT/scenes/val" ] || { stamp "no pre-rendered scenes: the tiny run cannot start"; DATA_RC=1; }

stamp "phase B: tiny model run | seed study"
SHIP_RC=skipped
if [ -d "$OUT/scenes/val" ]; then
  "$PY" -m bisegunet_training.train --config config/train/tiny_synthetic_gpu.yaml "data.root=$OUT/scenes" \
      "out_dir=$OUT/runs" "$@" > "$OUT/logs/30_tiny_run.log" 2>&1 &
  SHIP=$!
fi
# HOOK (lead): the seed study of bench/training.py, in parallel with the tiny run; adjust --jobs and
# what it writes (bench/training.{json,md}, runs/) before running, then list its outputs below.
# "$PY" -m bench.training --run --seeds 3 --jobs 4 --device cuda > "$OUT/logs/40_seed_study.log" 2>&1 &
# STUDY=$!
if [ -n "${SHIP:-}" ]; then wait "$SHIP"; SHIP_RC=$?; fi
[ -n "${STUDY:-}" ] && { wait "$STUDY"; stamp "seed study exit $?"; }
stamp "phase B done: tiny run exit $SHIP_RC"

LATENCY_RC=skipped
if [ "${GPU_LATENCY:-1}" != 0 ]; then
  stamp "phase C: GPU latency of the pareto models (FP16, CUDA graphs)"
  "$PY" -m bench.gpu_latency --out "$OUT/gpu_latency" > "$OUT/logs/50_gpu_latency.log" 2>&1
  LATENCY_RC=$?
  stamp "phase C done: gpu_latency exit $LATENCY_RC"
fi

RUN="$OUT/runs/tiny_synthetic_gpu"
for f in best.pt test.json metrics.jsonl curves.png; do
  [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/$f" || stamp "missing $RUN/$f"
done
stamp "done in $(( $(date +%s) - START )) s; files to copy back: $(cd "$OUT" && ls -1 *.json *.pt *.jsonl *.png 2>/dev/null | tr '\n' ' ')session.log"
# one log file: every log in order, tqdm's carriage-return redraws collapsed to their last state
for f in "$OUT"/logs/*.log; do echo "===== ${f##*/}"; tr '\r' '\n' < "$f" | grep -v '^\s*$' | grep -v '%|' ; done \
    > "$OUT/session.log"
[ "$SPEED_RC" = 0 ] && [ "$DATA_RC" = 0 ] && [ "$SHIP_RC" = 0 ] &&    # the exit status: did every part succeed
  { [ "$LATENCY_RC" = 0 ] || [ "$LATENCY_RC" = skipped ]; }
