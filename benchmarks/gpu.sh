#!/usr/bin/env bash
# finsentry on a lent GPU machine: model-only batch sweep and end to end, CUDA provider, fp16, IO binding.
#
# PREPARED, NOT YET RUN. A GPU machine was lent once (2026-11-30) but its image has no ONNX Runtime CUDA
# execution provider and the onnxruntime-gpu wheel cannot travel (see SIZE NOTE): benchmarks/gpu_torch.py
# measured the same weights through PyTorch there instead (benchmarks/RESULTS.md, "Issue #4, run 6").
#
# Run from the repository root on the GPU machine, e.g. through the device tool:
#     run(command="bash benchmarks/gpu.sh", carry=["var/gpu"], timeout_s=420)
# It expects, prepared on a CPU machine and carried in var/gpu/ (ignored by git):
#     (optional) var/gpu/model.fp16.onnx   overrides the default folder's own model.fp16.onnx (every
#                               published folder has one since issue #3; make one: benchmarks/make_fp16.py)
#     var/gpu/data/massive_stock_news_analyst_ratings_partial/analyst_ratings_processed.csv
#                               the first 25,001 lines of the shared Benzinga file (../shared/data does not
#                               travel; var/ is git-ignored, the data set never enters the repository):
#                                 d=var/gpu/data/massive_stock_news_analyst_ratings_partial; mkdir -p $d
#                                 head -25001 ../shared/data/${d#var/gpu/data/}/analyst_ratings_processed.csv > $d/analyst_ratings_processed.csv
#     var/gpu/wheels/*.whl      wheels the image lacks:            pip download -d var/gpu/wheels \
#                                 onnxruntime-gpu kafka-python pydantic-settings standardwebhooks apscheduler
# and writes $OUT/gpu-bench.json, $OUT/gpu-sweep.json and $OUT/gpu.log (or var/gpu-out/ without $OUT).
# Budget: under 5 minutes (install ~30 s, model load ~10 s, sweep ~60 s, bench ~2 min).
#
# SIZE NOTE: the device tool carries at most 64 MiB (tree + carry). Since issue #3 the tracked tree
# holds the default folder's int8 model.onnx (23.4 MB) and its fp16 model.fp16.onnx with int8
# word-embedding rows (33.5 MB): ~59 MB, so little is left for var/gpu (the Benzinga excerpt fits;
# an onnxruntime-gpu wheel does not: use a machine image that has it). Check `du -sh var/gpu`.
set -euo pipefail
OUT="${OUT:-var/gpu-out}"; mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" FINSENTRY_DATA_DIR="$PWD/var/gpu/data"
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "gpu.sh: no GPU"; exit 2; }

if ! "$PY" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  ls var/gpu/wheels/*.whl >/dev/null 2>&1 || { echo "gpu.sh: no CUDA provider and no wheels in var/gpu/wheels"; exit 2; }
  "$PY" -m pip uninstall -y -q onnxruntime || true
  "$PY" -m pip install -q --no-index --find-links var/gpu/wheels onnxruntime-gpu
fi
"$PY" -m pip install -q --no-index --find-links var/gpu/wheels kafka-python pydantic-settings standardwebhooks \
  apscheduler 2>/dev/null || true
"$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"

# A model folder = the published one (with its model.fp16.onnx), optionally with var/gpu/model.fp16.onnx
# instead, and a fresh manifest (the scorer loads the fp16 file only when CUDA is in use and the manifest
# lists it).
MODEL_DIR="$(mktemp -d)/gpu-model"
SRC="models/$(cat models/DEFAULT)"
cp -r "$SRC" "$MODEL_DIR"
[ -f var/gpu/model.fp16.onnx ] && cp var/gpu/model.fp16.onnx "$MODEL_DIR/"
[ -f "$MODEL_DIR/model.fp16.onnx" ] || echo "gpu.sh: no fp16 model, int8 on CUDA"
"$PY" -c "import sys; from inference import write_manifest; write_manifest(sys.argv[1], sys.argv[2])" "$MODEL_DIR" "$(cat models/DEFAULT)"

# 1. model-only sweep: micro-batch x sub-batch (rows per ONNX Runtime call), 20,000 real headlines.
timeout 150 "$PY" - "$MODEL_DIR" "$OUT/gpu-sweep.json" <<'PYEOF'
import json, sys, time
from inference import Scorer
from finsentry.bench import load_headlines
texts = load_headlines(9000)  # the sample holds 9,082 distinct titles
texts = (texts * 3)[:20000]
rows = []
for sub in (256, 1024, 4096):
    s = Scorer(sys.argv[1], "gpu", sub_batch=sub)
    s.score_texts(texts[:sub])  # warm-up: CUDA kernels, arena
    for batch in (256, 1024, 4096):
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            for i in range(0, len(texts), batch):
                s.score_texts(texts[i:i + batch])
            best = max(best, len(texts) / (time.perf_counter() - t))
        rows.append({"provider": s.provider, "model_file": s.model_file.name, "sub_batch": sub, "batch": batch,
                     "docs_per_s": best})
        print(rows[-1], flush=True)
json.dump(rows, open(sys.argv[2], "w"), indent=2)
PYEOF

# 2. finsentry bench on CUDA: model-only and, when Java is there for the local broker, end to end.
E2E=""; command -v java >/dev/null || E2E="--no-e2e"
FINSENTRY_MODEL__PATH="$MODEL_DIR" timeout 180 "$PY" -m finsentry bench --device gpu --no-hf $E2E \
  --n 9000 --repeats 3 --batch-sizes 256,1024,4096 --sub-batch 1024 --json "$OUT/gpu-bench.json"
