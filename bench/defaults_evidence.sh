#!/usr/bin/env bash
# The evidence behind the defaults (README, "Choosing the defaults"): every candidate on the demo model's
# whole test split, in two shards (one thread each), then merged by --finalize.
set -euo pipefail
OUT=${OUT:-runs/defaults_evidence}
VARIANTS="gradcam:layer=decoder
scorecam:layer=encoder.layer3,baseline=zero scorecam:layer=encoder.layer3,baseline=none
scorecam:layer=encoder.layer4,baseline=none
scorecam:layer=decoder,baseline=zero scorecam:layer=decoder,baseline=none
scorecam:layer=decoder,weights=centred scorecam:layer=decoder,baseline=none,weights=softmax"
for k in 0 1; do
  OMP_NUM_THREADS=1 .venv/bin/python visualize_scorecam.py --model_path best_model_FPN.safetensors --config demo \
    --methods gradcam,scorecam --target_layer encoder.layer4 --baseline zero --weights raw --all --split test \
    --output_dir "$OUT" --no_road --sanity_samples 0 --no_progress --resume --shard $k/2 --variants $VARIANTS &
done
wait
.venv/bin/python visualize_scorecam.py --finalize "$OUT"
