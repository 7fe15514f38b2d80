"""Inert stand-ins for the classes and functions a pickled checkpoint names, and which names may have one.

A stand-in takes the place of one global while a pickle is read: the unpickler may create it (with any arguments),
call it, and fill it with BUILD state; it records what it was given and runs nothing else. A pickle read with
stand-ins therefore runs no code of the classes it names, so nothing but the allowlist below needs vetting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

# Packages whose classes and functions a whole-model pickle may name (smp 0.3.x encoders came from
# pretrainedmodels and efficientnet_pytorch).
PACKAGES = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "pretrainedmodels", "efficientnet_pytorch")
# Data that training scripts store beside the weights ({"epoch", "best_iou": np.float64(...), "args": Namespace}).
DATA_GLOBALS = frozenset(
    {
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
        "argparse.Namespace",
    }
)


def may_stand_in(name: str) -> bool:
    """Rule: a global ('module.Qualname') gets a stand-in when it is one of DATA_GLOBALS or lies in PACKAGES."""
    return name in DATA_GLOBALS or any(name == p or name.startswith(p + ".") for p in PACKAGES)


class StandIn:
    """Takes the place of one global: made or called with any arguments, filled by BUILD; runs nothing."""

    global_name: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        self = object.__new__(cls)
        self.__dict__["_standin_args"] = args
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        # BUILD state is a __dict__, or (__dict__, slot values) as object.__reduce_ex__ writes it. Dunder keys are
        # dropped: an instance-level __setstate__ would be called by a second BUILD.
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        if all(p is None or isinstance(p, dict) for p in parts):
            for p in parts:
                self.__dict__.update(
                    {k: v for k, v in (p or {}).items() if isinstance(k, str) and not k.startswith("__")}
                )
        else:
            self.__dict__["_standin_state"] = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.global_name}>"


def stand_in(name: str) -> type[StandIn]:
    """A new stand-in class for the global `name`, with its short name (FPN, Conv2d...) as class name."""
    return type(name.rpartition(".")[2] or "StandIn", (StandIn,), {"global_name": name, "__module__": __name__})


def stand_ins(names: list[str]) -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    """[(stand-in, name)] for torch.serialization.safe_globals: one distinct stand-in per name."""
    return [(stand_in(n), n) for n in names]
