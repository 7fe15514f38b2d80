"""Target layers by dotted name, activation hooks, and restoring a model's state after a call."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .errors import XAIError


def default_target_layer(model: nn.Module) -> str:
    """The layer explained when none is named: the decoder's output for encoder-decoder models (smp's
    `decoder`, what the evidence in docs/evidence.md chose), else the encoder's deepest stage, else the last
    convolution."""
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, nn.Module) and any(True for _ in decoder.parameters()):
        return "decoder"
    return deepest_encoder_stage(model)


def deepest_encoder_stage(model: nn.Module) -> str:
    """`encoder.layer4` for ResNet/SE-ResNeXt encoders, else the last child of the encoder that holds
    parameters (not a pool or classifier), else the model's last convolution."""
    names = dict(model.named_modules())
    if "encoder.layer4" in names:
        return "encoder.layer4"
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Module):
        stages = [
            n
            for n, m in encoder.named_children()
            if any(True for _ in m.parameters())
            and not n.endswith("pool")
            and n not in ("fc", "last_linear", "classifier", "head")
        ]
        if stages:
            return f"encoder.{stages[-1]}"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise XAIError("the model has no convolution layer to explain; name a target layer")
    return convs[-1]


def resolve_target_layer(model: nn.Module, layer: str | nn.Module | Sequence[Any] | None) -> tuple[str, nn.Module]:
    """(name, module) of a target layer given by dotted name, as a module of the model, or as a list of
    one of those (pytorch-grad-cam's `target_layers=[model.layer4]`); None, "" or "auto": the default.
    An unknown name is refused with the nearest valid names."""
    if isinstance(layer, (list, tuple)):
        if len(layer) != 1:
            raise XAIError(f"one target layer is explained at a time, got {len(layer)}")
        layer = layer[0]
    if isinstance(layer, nn.Module):
        found = next((n for n, m in model.named_modules() if m is layer and n), None)
        if found is None:
            raise XAIError(f"the target layer ({type(layer).__name__}) is not a submodule of the model")
        return found, layer
    name = default_target_layer(model) if layer in (None, "", "auto", "default") else str(layer)
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return name, modules[name]
    candidates = [n for n in modules if n]
    near = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if not near:
        near = [n for n in candidates if n.count(".") <= 1][:8]
    raise XAIError(f"unknown target layer '{name}'; nearest valid names: {', '.join(near)}")


class ActivationCapture:
    """Forward hook storing a module's output (the first tensor of a tuple output)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: tuple, output) -> None:
        if isinstance(output, (tuple, list)):
            output = next(o for o in output if isinstance(o, torch.Tensor))
        self.value = output

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> ActivationCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class InputCapture(ActivationCapture):
    """Forward hook storing a module's first input: the logits that enter a final activation."""

    def _hook(self, _module: nn.Module, inputs: tuple, _output) -> None:
        self.value = inputs[0]


class LeafActivation(ActivationCapture):
    """Forward hook that hands the rest of the network a grad-requiring leaf copy of the output, so
    gradients with respect to it flow from the layers after it only (frozen encoders work)."""

    def _hook(self, _module: nn.Module, _inputs: tuple, output):
        if isinstance(output, (tuple, list)):
            raise XAIError("gradient methods need a target layer whose output is a single tensor")
        self.value = output.detach().requires_grad_(True)
        return self.value


@contextlib.contextmanager
def preserved_state(model: nn.Module, channels_last: bool = False) -> Iterator[nn.Module]:
    """Eval mode (and channels_last when asked) for the block; every module's training flag, each 4-D
    tensor's memory format and the global grad mode are restored afterwards, also on error."""
    flags = [(m, m.training) for m in model.modules()]
    grad_enabled = torch.is_grad_enabled()
    was_channels_last = [
        t for t in _tensors_4d(model) if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    ]
    try:
        model.eval()
        if channels_last:
            with torch.inference_mode(False):  # never turn the parameters into inference tensors
                model.to(memory_format=torch.channels_last)
        yield model
    finally:
        if channels_last:
            with torch.inference_mode(False):
                model.to(memory_format=torch.contiguous_format)
                keep = {id(t) for t in was_channels_last}
                for t in _tensors_4d(model):
                    if id(t) in keep:
                        t.data = t.data.contiguous(memory_format=torch.channels_last)
        for m, flag in flags:
            m.training = flag
        torch.set_grad_enabled(grad_enabled)


def _tensors_4d(model: nn.Module) -> list[torch.Tensor]:
    return [t for t in list(model.parameters()) + list(model.buffers()) if t.dim() == 4]


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
