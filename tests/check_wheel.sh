#!/usr/bin/env bash
# The wheel works outside the checkout: build it, install it without dependencies into a temporary
# target, and from another working directory import it, load the packaged config and run --help of
# every entry point. Usage: tests/check_wheel.sh PYTHON
set -euo pipefail
PY="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WORK/dist" "$ROOT" >/dev/null
"$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$WORK/site" "$WORK"/dist/seedling_xai-*.whl
mkdir "$WORK/elsewhere" && cd "$WORK/elsewhere"
export PYTHONPATH="$WORK/site"
"$PY" - "$WORK/site" <<'PYEOF'
import sys
from pathlib import Path
import xai
from xai.config import load_config, packaged_configs
assert Path(xai.__file__).is_relative_to(sys.argv[1]), f"imported {xai.__file__}, not the wheel"
assert (Path(xai.__file__).parent / "py.typed").is_file(), "py.typed missing from the wheel"
assert packaged_configs() == ["demo", "phenocyte", "phenocyte_scripts"], packaged_configs()
assert load_config().encoder == "se_resnext50_32x4d" and load_config("demo").encoder == "resnet18"
assert xai.__version__ != "0+unknown", xai.__version__
from xai.templating import render_template
page = render_template("gallery.html.j2", title="t", samples=[], toc_classes=[], links=[], legend="l")
assert "<html" in page and "--muted" in page, "templates or their style sheet missing from the wheel"
print(f"wheel: xai {xai.__version__} from {Path(xai.__file__).parent}; packaged configs {packaged_configs()}")
PYEOF
for cmd in "scorecam" "gradcam" "synth" "train"; do
  "$WORK/site/bin/seedling-xai" $cmd --help >/dev/null
done
"$PY" -m xai gradcam --help >/dev/null
"$PY" -c "import runpy, sys; sys.argv = ['visualize_scorecam.py', '--help']; runpy.run_path('$ROOT/visualize_scorecam.py', run_name='__main__')" >/dev/null
echo "wheel: seedling-xai {scorecam,gradcam,synth,train} --help, python -m xai and the scripts run from $PWD"
