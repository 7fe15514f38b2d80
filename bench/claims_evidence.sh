#!/usr/bin/env bash
# The researchers' claims on the demo model's test split (docs/evidence.md, "The researchers' claims, measured"): Grad-CAM and
# Score-CAM at their defaults, each connected component also explained on its own (--region instances),
# STABILITY noisy copies per map (default 3) for max-sensitivity, N test images (default 6), deletion and
# insertion with S steps (default 20), in SHARDS processes (one thread each, default 2), merged by --finalize.
set -euo pipefail
OUT=${OUT:-runs/claims_evidence}
N=${N:-6}
STEPS=${STEPS:-20}
SHARDS=${SHARDS:-2}
STABILITY=${STABILITY:-3}
for ((k = 0; k < SHARDS; k++)); do
  OMP_NUM_THREADS=1 .venv/bin/python visualize_scorecam.py --model_path best_model_FPN.safetensors --config demo \
    --methods gradcam,scorecam --evaluate --region instances --eval_steps "$STEPS" --sanity_samples 0 \
    --stability_samples "$STABILITY" --num_samples "$N" --split test --output_dir "$OUT" --no_progress --resume \
    --workers 1 --shard $k/$SHARDS &
done
wait
.venv/bin/python visualize_scorecam.py --finalize "$OUT"
