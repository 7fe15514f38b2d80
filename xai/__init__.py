"""Explainability for smp segmentation models of seedlings: explanation methods, TP/FP/FN maps, faithfulness.

Every registered method is available as `xai.<ClassName>` (ScoreCAM, GradCAM, GradCAMPlusPlus,
HiResCAM, LayerCAM, ...) and its options as `<ClassName>.Options`; see xai.methods.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("seedling-xai")  # one place: pyproject.toml
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {  # public name -> the module that defines it (as in xai.pipeline)
    "CAMResult": "xai.methods",
    "explain": "xai.api",
    "Explanation": "xai.explanation",
    "Explanations": "xai.explanation",
    "Attribution": "xai.methods.base",
    "Explainer": "xai.methods.base",
    "BaseCAM": "xai.methods.cam",
    "minmax": "xai.maps",
    "load_model": "xai.checkpoint",
    "save_checkpoint": "xai.checkpoint",
    "load_config": "xai.config",
    "XAIError": "xai.errors",
}


def _method_classes() -> dict[str, type]:
    from .methods.registry import methods

    return {info.cls.__name__: info.cls for info in methods().values()}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name[:1].isupper() and not name.startswith("_"):
        classes = _method_classes()
        if name in classes:
            return classes[name]
    raise AttributeError(f"module 'xai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_method_classes()])


__all__ = list(_LAZY)
