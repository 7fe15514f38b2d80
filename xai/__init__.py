"""Explainability for smp segmentation models of seedlings: Score-CAM, Grad-CAM, TP/FP/FN maps."""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "ScoreCAM": ("xai.scorecam", "ScoreCAM"),
    "GradCAM": ("xai.gradcam", "GradCAM"),
    "CAMResult": ("xai.targets", "CAMResult"),
    "load_model": ("xai.checkpoint", "load_model"),
    "load_config": ("xai.config", "load_config"),
    "XAIError": ("xai.errors", "XAIError"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'xai' has no attribute {name!r}")
