"""load_model: every checkpoint kind users have, safe by default (nothing from a file runs unless trusted)."""
from __future__ import annotations

import builtins
import hashlib
import os
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from xai.checkpoint import _classify, _scan_pickle, load_model, save_checkpoint
from xai.errors import XAIError

from conftest import image_batch, tiny_fpn

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]


def _out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Pickles that would run code
# ----------------------------------------------------------------------------------------------------------------

class _RunsCode:
    """Unpickling this calls `func(arg)`: what a malicious checkpoint does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func, global_name", [(os.system, "system"), (builtins.exec, "builtins.exec")])
def test_code_running_pickle_is_refused_and_not_run(tmp_path, func, global_name):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "best_model_FPN.pth"
    torch.save({"model": _RunsCode(func, arg), "epoch": 1}, path)

    with pytest.raises(XAIError) as err:
        load_model(path, arch="FPN", encoder="resnet18", classes=CLASSES)
    msg = str(err.value)
    assert not marker.exists()
    assert global_name in msg and "--trust_checkpoint" in msg and str(path) in msg
    assert "\n" not in msg


class TinyNet(nn.Module):
    """A user's own model class (not from torch/timm/smp)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, classes, 1)
        self.act = nn.Sigmoid()

    def forward(self, x):
        return self.act(self.head(torch.relu(self.conv(x))))


def test_user_class_needs_trust_and_loads_with_it(tmp_path):
    torch.manual_seed(0)
    net = TinyNet().eval()
    path = tmp_path / "user.pth"
    torch.save(net, path)
    x = image_batch()

    with pytest.raises(XAIError) as err:
        load_model(path)
    assert "TinyNet" in str(err.value) and "--trust_checkpoint" in str(err.value)

    loaded = load_model(path, trust_checkpoint=True)
    assert loaded.kind == "trusted_pickle"
    assert isinstance(loaded.model, TinyNet) and not loaded.model.training
    assert loaded.num_classes == 3
    assert loaded.outputs_probabilities is True
    assert torch.equal(_out(loaded.model, x), _out(net, x))
    assert loaded.sha256 == _sha(path)


def test_vetting_flags_class_mutation_and_constructor_calls():
    # GLOBAL torch.Tensor; BUILD (None, {'foo': 1}) on the class itself: would set attributes on torch.Tensor.
    mutate = b"\x80\x02ctorch\nTensor\nN}X\x03\x00\x00\x00fooK\x01s\x86b."
    uses: dict = {}
    _scan_pickle(mutate, uses)
    _, _, refused = _classify(uses)
    assert refused == ["torch.Tensor"]
    # REDUCE Conv2d(3, 3, 1): would run a module's __init__; such a class is never allowlisted, only stubbed.
    construct = b"\x80\x02ctorch.nn.modules.conv\nConv2d\nK\x03K\x03K\x01\x87R."
    uses = {}
    _scan_pickle(construct, uses)
    safe, stub, refused = _classify(uses)
    assert stub == ["torch.nn.modules.conv.Conv2d"] and not safe and not refused


def test_model_with_replaced_method_is_not_run_but_rebuilt(tmp_path, fpn):
    x = image_batch()
    ref = _out(fpn, x)
    object.__setattr__(fpn.segmentation_head, "forward", nn.Identity())  # per-instance override in the pickle
    torch.save(fpn, tmp_path / "odd.pth")
    loaded = load_model(tmp_path / "odd.pth", classes=CLASSES)
    assert loaded.kind == "recovered_whole_model"
    assert any("replaced method (segmentation_head.forward)" in n for n in loaded.notes)
    assert "forward" not in vars(loaded.model.segmentation_head)
    assert torch.equal(_out(loaded.model, x), ref)


# ----------------------------------------------------------------------------------------------------------------
# Whole models, state_dicts, the project's format
# ----------------------------------------------------------------------------------------------------------------

def test_whole_model_pickle(tmp_path):
    model = tiny_fpn()
    path = tmp_path / "best_model_FPN.pth"
    torch.save(model, path)
    x = image_batch()

    loaded = load_model(path, arch="Unet", encoder="resnet34", classes=CLASSES)
    assert loaded.kind == "whole_model"
    assert (loaded.arch, loaded.encoder) == ("FPN", "resnet18")  # what the pickle says, not the config
    assert loaded.num_classes == 5 and loaded.classes == CLASSES
    assert loaded.sha256 == _sha(path)
    assert not loaded.model.training
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert torch.equal(_out(loaded.model, x), _out(model, x))


def test_pickles_torch_weights_only_cannot_read_are_recovered(tmp_path, sigmoid_fpn):
    """Protocol-4 framing and the legacy (pre-1.6) format: torch's weights-only unpickler refuses them."""
    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    torch.save(sigmoid_fpn, tmp_path / "p4.pth", pickle_protocol=4)
    torch.save(sigmoid_fpn, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    for name in ("p4.pth", "legacy.pth"):
        loaded = load_model(tmp_path / name)
        assert loaded.kind == "recovered_whole_model", name
        assert (loaded.arch, loaded.encoder, loaded.activation) == ("FPN", "resnet18", "sigmoid")
        assert torch.equal(_out(loaded.model, x), ref), name


def test_sigmoid_head_detected(tmp_path, fpn, sigmoid_fpn):
    torch.save(fpn, tmp_path / "plain.pth")
    torch.save(sigmoid_fpn, tmp_path / "sigmoid.pth")
    plain = load_model(tmp_path / "plain.pth")
    sig = load_model(tmp_path / "sigmoid.pth")
    assert plain.outputs_probabilities is False and plain.activation is None
    assert sig.outputs_probabilities is True and sig.activation == "sigmoid"
    out = _out(sig.model, image_batch())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_plain_and_wrapped_state_dicts(tmp_path, sigmoid_fpn):
    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    state = sigmoid_fpn.state_dict()
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"epoch": 12, "best_iou": np.float64(0.83), "model_state_dict": state,
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3}]}}, tmp_path / "wrapped.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dataparallel.pth")

    for name in ("plain", "wrapped", "dataparallel"):
        loaded = load_model(tmp_path / f"{name}.pth", arch="FPN", encoder="resnet18", classes=CLASSES,
                            activation="sigmoid")
        assert loaded.kind == "state_dict", name
        assert loaded.num_classes == 5 and loaded.outputs_probabilities is True
        assert torch.equal(_out(loaded.model, x), ref), name
    # Without an activation flag the same weights are a logit model.
    logits = load_model(tmp_path / "plain.pth", arch="FPN", encoder="resnet18")
    assert logits.outputs_probabilities is False and logits.classes is None
    assert torch.allclose(torch.sigmoid(_out(logits.model, x)), ref, atol=1e-6)

    with pytest.raises(XAIError, match="arch"):
        load_model(tmp_path / "plain.pth")


def test_state_dict_that_does_not_fit(tmp_path, fpn):
    torch.save(fpn.state_dict(), tmp_path / "sd.pth")
    with pytest.raises(XAIError) as err:
        load_model(tmp_path / "sd.pth", arch="FPN", encoder="resnet34")
    msg = str(err.value)
    assert "sd.pth" in msg and "resnet34" in msg and "missing keys" in msg and "\n" not in msg


def test_project_format_round_trip(tmp_path, sigmoid_fpn):
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, sigmoid_fpn, arch="FPN", encoder="resnet18", classes=CLASSES, img_size=(64, 32),
                    activation="sigmoid", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = image_batch()

    loaded = load_model(path, arch="Unet", encoder="resnet34")  # the checkpoint's meta wins over the config
    assert loaded.kind == "project"
    assert (loaded.arch, loaded.encoder, loaded.classes) == ("FPN", "resnet18", CLASSES)
    assert loaded.img_size == (64, 32)
    assert loaded.mean == pytest.approx((0.485, 0.456, 0.406)) and loaded.std == pytest.approx((0.229, 0.224, 0.225))
    assert loaded.outputs_probabilities is True and loaded.num_classes == 5
    assert loaded.sha256 == _sha(path)
    assert torch.equal(_out(loaded.model, x), _out(sigmoid_fpn, x))


# ----------------------------------------------------------------------------------------------------------------
# Old pickles naming classes that are not installed here
# ----------------------------------------------------------------------------------------------------------------

def _fake_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    return mod


def test_pickle_naming_modules_not_installed_is_recovered(tmp_path, sigmoid_fpn):
    """Like smp 0.3.x: encoder blocks from `pretrainedmodels`, the model class from `segmentation_models_pytorch.fpn`."""
    from segmentation_models_pytorch.decoders.fpn.model import FPN
    from torchvision.models.resnet import BasicBlock

    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    ran = []
    created = ["pretrainedmodels", "pretrainedmodels.models", "pretrainedmodels.models.senet",
               "segmentation_models_pytorch.fpn", "segmentation_models_pytorch.fpn.model"]
    try:
        _fake_module("pretrainedmodels")
        _fake_module("pretrainedmodels.models")
        senet = _fake_module("pretrainedmodels.models.senet")
        _fake_module("segmentation_models_pytorch.fpn")
        old_fpn = _fake_module("segmentation_models_pytorch.fpn.model")

        class SEResNeXtBottleneck(BasicBlock):
            def __setstate__(self, state):  # must never run at load time
                ran.append("setstate")
                super().__setstate__(state)

        class OldFPN(FPN):
            pass

        SEResNeXtBottleneck.__module__, SEResNeXtBottleneck.__qualname__ = senet.__name__, "SEResNeXtBottleneck"
        OldFPN.__module__, OldFPN.__name__, OldFPN.__qualname__ = old_fpn.__name__, "FPN", "FPN"
        senet.SEResNeXtBottleneck = SEResNeXtBottleneck
        old_fpn.FPN = OldFPN
        for m in sigmoid_fpn.encoder.modules():
            if type(m) is BasicBlock:
                m.__class__ = SEResNeXtBottleneck
        sigmoid_fpn.__class__ = OldFPN
        torch.save(sigmoid_fpn, tmp_path / "best_model_FPN.pth")
    finally:
        for name in created:
            sys.modules.pop(name, None)

    loaded = load_model(tmp_path / "best_model_FPN.pth", arch="FPN", encoder="resnet18", classes=CLASSES)
    assert loaded.kind == "recovered_whole_model"
    assert (loaded.arch, loaded.encoder, loaded.num_classes) == ("FPN", "resnet18", 5)
    assert loaded.activation == "sigmoid" and loaded.outputs_probabilities is True  # read off the old head
    assert type(loaded.model) is FPN and not loaded.model.training
    assert any("pretrainedmodels.models.senet.SEResNeXtBottleneck" in n for n in loaded.notes)
    assert torch.equal(_out(loaded.model, x), ref)
    assert ran == [] and "pretrainedmodels" not in sys.modules


def test_pickle_that_no_longer_fits_installed_classes_is_rebuilt(tmp_path, fpn):
    """Importable classes, but the pickled objects lack attributes the installed code needs (older smp)."""
    x = image_batch()
    ref = _out(fpn, x)
    del fpn.encoder._depth  # an attribute the installed ResNetEncoder.forward reads
    torch.save(fpn, tmp_path / "old.pth")
    loaded = load_model(tmp_path / "old.pth", classes=CLASSES)
    assert loaded.kind == "recovered_whole_model"
    assert any("does not run" in n for n in loaded.notes)
    assert torch.equal(_out(loaded.model, x), ref)


# ----------------------------------------------------------------------------------------------------------------
# Bad files and mismatches
# ----------------------------------------------------------------------------------------------------------------

def test_missing_directory_truncated_and_foreign_files(tmp_path, fpn):
    with pytest.raises(XAIError, match="not found"):
        load_model(tmp_path / "nope.pth")
    with pytest.raises(XAIError, match="not a file"):
        load_model(tmp_path)

    good = tmp_path / "good.pth"
    torch.save(fpn, good)
    data = good.read_bytes()
    for name, blob in (("truncated.pth", data[: len(data) // 2]), ("head.pth", data[:100]),
                       ("text.pth", b"hello, not a checkpoint\n"), ("empty.pth", b"")):
        bad = tmp_path / name
        bad.write_bytes(blob)
        with pytest.raises(XAIError) as err:
            load_model(bad, arch="FPN", encoder="resnet18")
        msg = str(err.value)
        assert name in msg and "\n" not in msg, msg


def test_class_count_mismatch(tmp_path):
    model = tiny_fpn(classes=4)
    torch.save(model, tmp_path / "whole.pth")
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    save_checkpoint(tmp_path / "proj.pth", model, arch="FPN", encoder="resnet18", classes=CLASSES[:4],
                    img_size=(64, 32))
    for name in ("whole.pth", "sd.pth", "proj.pth"):
        with pytest.raises(XAIError) as err:
            load_model(tmp_path / name, arch="FPN", encoder="resnet18", classes=CLASSES)
        msg = str(err.value)
        assert "checkpoint has 4 output classes but the config lists 5" in msg and name in msg, msg
    assert load_model(tmp_path / "sd.pth", arch="FPN", encoder="resnet18", classes=CLASSES[:4]).num_classes == 4
