"""The figures under their earlier module name: xai.render is xai.figures."""

from .figures import *  # noqa: F403
from .figures import __all__ as __all__
