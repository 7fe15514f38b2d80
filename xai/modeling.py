"""Building smp models and describing what their output is (probabilities or logits)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import XAIError
from .layers import InputCapture
from .targets import check_score, class_scores_map

ARCHS = (
    "Unet",
    "UnetPlusPlus",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "Linknet",
    "MAnet",
    "PAN",
    "UPerNet",
    "Segformer",
)


def build_model(
    arch: str,
    encoder: str,
    num_classes: int,
    activation: str | None = None,
    in_channels: int = 3,
    **decoder_kwargs: Any,
) -> nn.Module:
    """An smp model with untrained weights (no download: encoder_weights=None)."""
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=num_classes,
            activation=activation,
            **decoder_kwargs,
        )
    except KeyError as exc:
        raise XAIError(f"unknown architecture or encoder ({arch}, {encoder}): {exc}") from None
    except (ValueError, TypeError) as exc:
        raise XAIError(f"cannot build {arch} with encoder {encoder}: {exc}") from None


_PROB_ACTIVATIONS = (nn.Sigmoid, nn.Softmax, nn.Softmax2d, nn.LogSoftmax)


def final_activation(model: nn.Module) -> nn.Module | None:
    """The module that turns logits into the model's output, or None for a logit model.

    smp heads end in `Activation(activation=...)`; a generic model may end in nn.Sigmoid/nn.Softmax.
    """
    head = getattr(model, "segmentation_head", None)
    if isinstance(head, nn.Sequential) and len(head) > 0:
        last = head[-1]
        inner = getattr(last, "activation", None)
        if inner is not None and isinstance(inner, nn.Module):
            if isinstance(inner, nn.Identity):
                return None
            return last
        if isinstance(last, _PROB_ACTIVATIONS):
            return last
        return None
    modules = list(model.modules())
    if modules and isinstance(modules[-1], _PROB_ACTIVATIONS):
        return modules[-1]
    return None


def outputs_probabilities(model: nn.Module) -> bool:
    """True when the model's head already ends in an activation (sigmoid/softmax), as users' FPNs do."""
    act = final_activation(model)
    if act is None:
        return False
    inner = getattr(act, "activation", act)
    return not isinstance(inner, nn.LogSoftmax)


def head_kind(model: nn.Module) -> str:
    """What the model's output is: "logits", or the probabilities of its head's "sigmoid" or "softmax"
    (or "logsoftmax")."""
    act = final_activation(model)
    inner = getattr(act, "activation", act)
    if act is None:
        return "logits"
    if isinstance(inner, nn.Sigmoid):
        return "sigmoid"
    if isinstance(inner, nn.LogSoftmax):
        return "logsoftmax"
    return "softmax"


def count_classes(model: nn.Module) -> int | None:
    """Number of output channels of an smp segmentation head, when it can be read off the model."""
    head = getattr(model, "segmentation_head", None)
    if isinstance(head, nn.Sequential):
        for m in head:
            if isinstance(m, nn.Conv2d):
                return int(m.out_channels)
    return None


def pick_device(name: str | None = None) -> torch.device:
    """'cuda' when available (or asked), else 'cpu'; an unavailable device is refused in one line."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise XAIError(f"unknown device '{name}' (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise XAIError(f"device '{name}' asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise XAIError(f"device '{name}' asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise XAIError(f"device '{name}' asked for, but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise XAIError(f"unsupported device '{name}' (use cpu, cuda or cuda:N)")
    return dev


def unwrap_output(output: Any) -> torch.Tensor:
    """The segmentation output of a forward pass: the tensor itself, the first tensor of a tuple or
    list (aux heads), or the "out" entry (else the first tensor) of a dict (torchvision's models)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = [output["out"]] if "out" in output else list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise XAIError(f"the model returned {type(output).__name__}, not a B×C×H×W tensor of class scores")


class ScoredModel:
    """A model and how its output becomes per-pixel class scores P (B×C×H×W, float32):

        kind "prob":  softmax of the logits, or the model's own output when its head ends in an activation
        kind "logit": the logits (read at the input of a final activation when the head has one)

    `forward(x)` returns (output, P): the one place where a model's output is unwrapped and scored.
    Batched forwards (a sweep's chunks: no gradients, no hooks of a method) run through torch.compile
    with `compile` and with cuDNN's algorithm search with `cudnn_benchmark` (xai.compilation)."""

    def __init__(self, model: nn.Module, kind: str = "prob", compile: bool = False, cudnn_benchmark: bool = False):
        check_score(kind)
        self.model, self.kind = model, kind
        self.head = final_activation(model)
        self.probabilities = outputs_probabilities(model)
        self.compile, self.cudnn_benchmark = compile, cudnn_benchmark

    def run(self, x: torch.Tensor, through: Any = None, batched: bool = False, hooked: bool = False) -> torch.Tensor:
        """The output of model(x), or of through(x): a part of the model that ends in its head (the layers
        after a target layer, run on cached features). batched: a sweep's chunk; hooked: a hook of this
        class reads a layer during the pass (the model then runs uncompiled)."""
        if not batched:
            return unwrap_output((through or self.model)(x))
        from .compilation import compiled, cudnn_benchmark

        with cudnn_benchmark(self.cudnn_benchmark):
            if self.compile and through is None and not hooked:
                return unwrap_output(compiled(self.model)(x))
            return unwrap_output((through or self.model)(x))

    def probabilities_of(self, output: torch.Tensor) -> torch.Tensor:
        """The class probabilities (B×C×H×W, float32) of an output of the model, whatever the score: the
        softmax of logits, or the head's own probabilities."""
        return class_scores_map(output, "prob", self.probabilities)

    def forward(self, x: torch.Tensor, through: Any = None, batched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, P) of `run(x, through, batched)`."""
        tap = InputCapture(self.head) if self.kind == "logit" and self.head is not None else None
        try:
            output = self.run(x, through, batched, hooked=tap is not None)
            scored = tap.value if tap is not None and tap.value is not None else output
        finally:
            if tap is not None:
                tap.remove()
        return output, class_scores_map(scored, self.kind, self.probabilities)
