#!/usr/bin/env bash
# The evidence behind the defaults (docs/evidence.md, "Choosing the defaults"): every candidate on the demo model's
# test split (N images, default all), in SHARDS processes (one thread each, default 2), then merged by
# --finalize. Deletion/insertion with S steps (default 50).
set -euo pipefail
OUT=${OUT:-runs/defaults_evidence}
SHARDS=${SHARDS:-2}
STEPS=${STEPS:-50}
SAMPLES=${N:+--num_samples $N}
SAMPLES=${SAMPLES:---all}
VARIANTS="gradcam:layer=decoder
scorecam:layer=encoder.layer3,baseline=zero scorecam:layer=encoder.layer3,baseline=none
scorecam:layer=encoder.layer4,baseline=none
scorecam:layer=decoder,baseline=zero scorecam:layer=decoder,baseline=none
scorecam:layer=decoder,weights=centred scorecam:layer=decoder,baseline=none,weights=softmax"
for ((k = 0; k < SHARDS; k++)); do
  # shellcheck disable=SC2086  # $SAMPLES and $VARIANTS are word lists
  OMP_NUM_THREADS=1 .venv/bin/python visualize_scorecam.py --model_path best_model_FPN.safetensors --config demo \
    --methods gradcam,scorecam --target_layer encoder.layer4 --baseline zero --weights raw $SAMPLES --split test \
    --eval_steps "$STEPS" --output_dir "$OUT" --no_road --sanity_samples 0 --stability_samples 0 --no_progress \
    --resume --shard $k/$SHARDS --variants $VARIANTS &
done
wait
.venv/bin/python visualize_scorecam.py --finalize "$OUT"
