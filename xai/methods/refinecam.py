"""RefineCAM (pytorch-grad-cam 1.5.7's RefineCAM, "a meta-method for aggregating CAMs from multiple
layers", arXiv:2605.14641): a base CAM at each of several layers, each map scaled to [0, 1] at the
input's resolution, and their product, so that a pixel stays only where every layer puts it (the deep
layers' localisation denoises the shallow layers' detail).

For the layers l = 1..L and the base CAM's map L_l,c at layer l (Grad-CAM by default),

    M_l,c = minmax_V(Up(ReLU(L_l,c)))        A_c = Π_l M_l,c

and then min-max as every method. The default layers are an FPN's pyramid: smp's `decoder.p5`,
`decoder.p4`, `decoder.p3`, `decoder.p2`, the P5..P2 of Lin et al. (2017), the decoder's feature maps at
strides 32, 16, 8 and 4 (top-down sum of the upsampled coarser level and the lateral 1×1 convolution of
the encoder's stage); the decoder's `seg_blocks` are all at stride 4 and the encoder's stages are the
backbone's, not the FPN's. A model without that pyramid takes `encoder.layer1`..`encoder.layer4` (ResNet
stages); others name their layers (`--refine_layers`).

pytorch-grad-cam's base CAM is Grad-CAM++ by default; here Grad-CAM (`--refine_base gradcampp` gives
theirs): the pyramid's levels have no ReLU, so Grad-CAM++'s α = 1 / (2 + Σ_ab A_k · g) has poles where
a channel's activations sum to a negative, and its maps there change with rounding (batched and
single-image forwards differ by up to 3 % of a map). Any CAM whose only option is its layer may be the
base. Like theirs, one base CAM per layer, each with its own forward pass (the gradient CAMs cut the graph
at their layer, one layer at a time), the first from the explain path's own pass. Their loop that applies
ReLU and divides by the maximum before the product rebinds its loop variable and changes nothing; each
base map is already min-max scaled, as here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import cast

import torch

from ..errors import XAIError
from ..errors import option as flag
from ..layers import ActivationCapture
from ..maps import minmax
from ..options import option
from .base import Explainer, ExplainerOptions, Forward
from .cam import BaseCAM, CAMOptions
from .registry import get_method, methods, register

PYRAMID = ("decoder.p5", "decoder.p4", "decoder.p3", "decoder.p2")
RESNET_STAGES = ("encoder.layer1", "encoder.layer2", "encoder.layer3", "encoder.layer4")


def base_methods() -> tuple[str, ...]:
    """The CAMs a RefineCAM may run at each layer: those whose only own option is the target layer."""
    return tuple(n for n, i in methods().items() if issubclass(i.cls, BaseCAM) and i.options is CAMOptions)


@dataclass(frozen=True)
class RefineCAMOptions(ExplainerOptions):
    refine_layers: tuple[str, ...] | None = option(
        None,
        "RefineCAM's layers (dotted module names) whose maps are multiplied; default: an FPN's pyramid "
        "decoder.p5 decoder.p4 decoder.p3 decoder.p2, else encoder.layer1 .. encoder.layer4",
        key="layers",
        metavar="LAYER",
    )
    refine_base: str = option("gradcam", "the CAM RefineCAM computes at each layer", choices=base_methods, key="base")


def default_layers(model: torch.nn.Module) -> tuple[str, ...]:
    """An FPN's pyramid (decoder.p5 .. p2), else a ResNet encoder's four stages; else an XAIError."""
    names = dict(model.named_modules())
    for layers in (PYRAMID, RESNET_STAGES):
        if all(n in names for n in layers):
            return layers
    raise XAIError(f"RefineCAM has no default layers for this model: name them with {flag('refine_layers')}")


@register("refinecam", label="RefineCAM")
class RefineCAM(Explainer):
    """RefineCAM: the product of a base CAM's [0, 1] maps at several layers."""

    Options = RefineCAMOptions
    family = "cam"
    uses_gradients = True

    def configure(self, options: RefineCAMOptions) -> RefineCAMOptions:
        base = get_method(options.refine_base).cls
        names = options.refine_layers or default_layers(self.model)
        if not names:
            raise XAIError(f"{flag('refine_layers')} needs at least one layer")
        self.parts = [cast(BaseCAM, base(self.model, CAMOptions(target_layer=n))) for n in names]
        return options.replace(refine_layers=tuple(p.target_layer for p in self.parts))

    def capture(self) -> ActivationCapture:
        return self.parts[0].capture()

    def attribute(self, fwd: Forward) -> torch.Tensor:
        product, backwards = None, 0
        for i, part in enumerate(self.parts):
            f = dataclasses.replace(fwd, stats={}, extra={}) if i == 0 else self.layer_forward(part, fwd)
            layer_map = minmax(part.attribute(f), fwd.valid[:, None])  # M_l = minmax_V(Up(ReLU(L_l)))
            product = layer_map if product is None else product * layer_map
            backwards += int(f.stats.get("backwards", 0))
        assert product is not None
        fwd.stats.update(forwards=len(self.parts), backwards=backwards, layers=len(self.parts))
        return product

    def layer_forward(self, part: BaseCAM, fwd: Forward) -> Forward:
        """Another forward pass of fwd.x with `part`'s capture, scored on fwd's regions (and contrast)."""
        capture = part.capture()
        with capture:
            output, P = self.forward_scores(fwd.x)
        scores = self.region_scores(P, fwd.regions, fwd.classes)
        return dataclasses.replace(fwd, output=output, scores=scores, activations=capture.value, stats={}, extra={})
