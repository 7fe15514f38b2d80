"""Methods: one explain path (xai.methods.base.Explainer), the CAM family over it (xai.methods.cam), and
one small file per method, each registering itself (xai.methods.registry). `methods()` lists them;
`get_method(name).cls(model, options)` builds one."""

from .base import Attribution, Explainer, ExplainerOptions, Forward
from .cam import BaseCAM, CAMOptions, GradientCAM
from .registry import MethodInfo, get_method, method_names, methods, register

CAMResult = Attribution  # the name of earlier releases

__all__ = [
    "Attribution",
    "BaseCAM",
    "CAMOptions",
    "CAMResult",
    "Explainer",
    "ExplainerOptions",
    "Forward",
    "GradientCAM",
    "MethodInfo",
    "get_method",
    "method_names",
    "methods",
    "register",
]
