"""CAM methods: one base class (xai.methods.base) and one small file per method, each registering
itself (xai.methods.registry). `methods()` lists them; `get_method(name).cls` builds one."""

from .base import BaseCAM, CAMOptions, CAMResult, Forward, GradientCAM
from .registry import MethodInfo, get_method, method_names, methods, register

__all__ = [
    "BaseCAM",
    "CAMOptions",
    "CAMResult",
    "Forward",
    "GradientCAM",
    "MethodInfo",
    "get_method",
    "method_names",
    "methods",
    "register",
]
