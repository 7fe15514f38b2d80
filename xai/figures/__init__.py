"""Publication figures: TP/FP/FN error maps (prediction figures where there is no mask), heatmaps and a
class-by-method comparison grid.

Every input is on the ORIGINAL photograph (padding cropped by the caller): rgb H×W×3 uint8, gt H×W
class ids (or None when unknown), pred H×W class ids, maps H×W float in [0, 1]. overlays.py makes the
picture panels, page.py lays them out and draws the text; one module per figure.
"""

from .comparison import comparison_page, save_comparison_figure
from .error import save_error_figure
from .heatmap import save_heatmap_figure
from .overlays import (
    ABSENT_TEXT,
    DEFAULT_CMAP,
    FN_COLOR,
    FP_COLOR,
    TP_COLOR,
    UNKNOWN_CLASS_COLOR,
    colorize_classes,
    error_overlay,
    heatmap_overlay,
)
from .page import DEFAULT_DPI
from .prediction import save_prediction_figure

__all__ = [
    "ABSENT_TEXT",
    "DEFAULT_CMAP",
    "DEFAULT_DPI",
    "FN_COLOR",
    "FP_COLOR",
    "TP_COLOR",
    "UNKNOWN_CLASS_COLOR",
    "colorize_classes",
    "comparison_page",
    "error_overlay",
    "heatmap_overlay",
    "save_comparison_figure",
    "save_error_figure",
    "save_heatmap_figure",
    "save_prediction_figure",
]
