"""The method registry: names, labels, folders; a new method is one file away."""

from __future__ import annotations

import pytest
import torch

import xai
from xai.errors import XAIError
from xai.methods import BaseCAM, Forward, get_method, methods, register, registry


def test_the_methods_researchers_compare():
    known = methods()
    assert {n: (i.label, i.family) for n, i in known.items()} == {
        "ablationcam": ("Ablation-CAM", "cam"),
        "eigencam": ("Eigen-CAM", "cam"),
        "eigengradcam": ("Eigen-Grad-CAM", "cam"),
        "fem": ("FEM", "cam"),
        "fullgrad": ("FullGrad", "attribution"),
        "gradcam_elementwise": ("Grad-CAM element-wise", "cam"),
        "kpcacam": ("KPCA-CAM", "cam"),
        "refinecam": ("RefineCAM", "cam"),
        "segeigencam": ("Seg-Eigen-CAM", "cam"),
        "shapleycam": ("ShapleyCAM", "cam"),
        "gradcam": ("Grad-CAM", "cam"),
        "gradcampp": ("Grad-CAM++", "cam"),
        "gradient_shap": ("GradientSHAP", "attribution"),
        "hirescam": ("HiResCAM", "cam"),
        "integrated_gradients": ("Integrated Gradients", "attribution"),
        "kernel_shap": ("KernelSHAP", "surrogate"),
        "layercam": ("LayerCAM", "cam"),
        "lime": ("LIME", "surrogate"),
        "occlusion": ("Occlusion", "perturbation"),
        "rise": ("RISE", "perturbation"),
        "saliency": ("Saliency", "attribution"),
        "scorecam": ("Score-CAM", "cam"),
        "sscam": ("SS-CAM", "cam"),
        "iscam": ("IS-CAM", "cam"),
        "smoothgrad": ("SmoothGrad", "attribution"),
        "uncertainty": ("Uncertainty", "uncertainty"),
        "xgradcam": ("XGrad-CAM", "cam"),
    }
    assert known["scorecam"].folder == "scorecam_maps" and known["occlusion"].folder == "occlusion_maps"
    gradient_free = [n for n, i in known.items() if not i.uses_gradients]
    assert gradient_free == [
        "ablationcam",
        "eigencam",
        "fem",
        "scorecam",  # imported by iscam.py, so registered before it (modules register in import order)
        "iscam",
        "kernel_shap",
        "kpcacam",
        "lime",
        "occlusion",
        "rise",
        "sscam",
        "uncertainty",
    ]
    for info in known.values():
        assert getattr(xai, info.cls.__name__) is info.cls  # xai.ScoreCAM, xai.LayerCAM, ...


def test_unknown_method_is_refused_with_the_known_ones():
    known = "ablationcam, eigencam, eigengradcam, fem, fullgrad, gradcam,"
    with pytest.raises(XAIError, match=f"unknown method 'gradcam3': choose one of {known}"):
        get_method("gradcam3")


def test_a_new_method_registers_itself_everywhere(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("meancam", label="Mean-CAM")
    class MeanCAM(BaseCAM):
        """Every channel counts the same."""

        def weights(self, fwd: Forward) -> torch.Tensor:
            assert fwd.activations is not None
            return torch.ones(fwd.activations.shape[0], fwd.activations.shape[1], len(fwd.classes))

    info = get_method("meancam")
    assert (info.cls, info.label, info.folder, info.uses_gradients) == (MeanCAM, "Mean-CAM", "meancam_maps", False)
    assert xai.MeanCAM is MeanCAM
    from xai.cli import build_parser

    assert "meancam" in build_parser("scorecam").format_help()
    with pytest.raises(ValueError, match="already registered"):
        register("meancam", label="other")(type("Other", (BaseCAM,), {}))
    with pytest.raises(ValueError, match="lower-case identifier"):
        register("Mean CAM", label="x")
