#!/usr/bin/env bash
# Every explainer on the demo model's test split (docs/evidence.md, "Which explainer to trust"): all registered
# methods at their defaults, evaluated with ROAD, in SHARDS processes (one thread each, default 2), merged
# by --finalize. N test images (default 10); deletion/insertion with S steps (default 20). The stability
# measures (STABILITY noisy copies per map, default 0 here: they multiply every method's cost) are left out.
# METHODS (comma-separated registry names, default every registered method) and VARIANTS (--variants specs,
# e.g. the contrast maps 'gradcam:contrast=auto') select a part of the table, on the same images.
set -euo pipefail
OUT=${OUT:-runs/explainers_evidence}
N=${N:-10}
STEPS=${STEPS:-20}
SHARDS=${SHARDS:-2}
STABILITY=${STABILITY:-0}
METHODS=${METHODS:-$(.venv/bin/python -c "from xai.methods import method_names; print(','.join(method_names()))")}
VARIANTS=${VARIANTS:-}
for ((k = 0; k < SHARDS; k++)); do
  # shellcheck disable=SC2086  # $VARIANTS is a word list
  OMP_NUM_THREADS=1 .venv/bin/python visualize_scorecam.py --model_path best_model_FPN.safetensors --config demo \
    --methods "$METHODS" --evaluate --eval_steps "$STEPS" --sanity_samples 0 --stability_samples "$STABILITY" \
    --num_samples "$N" --split test --output_dir "$OUT" --no_progress --resume --workers 1 --shard $k/$SHARDS ${VARIANTS:+--variants $VARIANTS} &
done
wait
.venv/bin/python visualize_scorecam.py --finalize "$OUT"
