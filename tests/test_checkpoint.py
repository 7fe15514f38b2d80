"""load_model: every checkpoint kind users have, safe by default (nothing from a file runs unless trusted)."""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import hashlib
import json
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import image_batch, tiny_fpn
from xai.checkpoint import FORMAT, KINDS, load_model, save_checkpoint
from xai.errors import XAIError

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]
PACKAGE = Path(__file__).resolve().parent.parent / "xai" / "checkpoint"


def _out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(XAIError) as err:
        load_model(path, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and Path(path).name in msg, msg
    return msg


# ----------------------------------------------------------------------------------------------------------------
# Pickles that would run code
# ----------------------------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls `func(arg)`: what a malicious checkpoint does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize(
    "save", [{}, {"pickle_protocol": 4}, {"_use_new_zipfile_serialization": False}], ids=["zip", "protocol4", "legacy"]
)
@pytest.mark.parametrize("func, global_name", [(os.system, "system"), (builtins.exec, "builtins.exec")])
def test_code_running_pickle_is_refused_and_not_run(tmp_path, func, global_name, save):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "best_model_FPN.pth"
    torch.save({"model": _RunsCode(func, arg), "epoch": 1}, path, **save)

    msg = _one_line_error(path, arch="FPN", encoder="resnet18", classes=CLASSES)
    assert not marker.exists()
    assert global_name in msg and "--trust_checkpoint" in msg and str(path) in msg


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

    msg = _one_line_error(path)
    assert "TinyNet" in msg and "--trust_checkpoint" in msg

    loaded = load_model(path, trust_checkpoint=True)
    assert loaded.kind == "trusted_pickle"
    assert isinstance(loaded.model, TinyNet) and not loaded.model.training
    assert loaded.num_classes == 3
    assert loaded.outputs_probabilities is True
    assert torch.equal(_out(loaded.model, x), _out(net, x))
    assert loaded.sha256 == _sha(path)


def _torch_zip(path: Path, data_pkl: bytes) -> None:
    """A torch.save zip archive whose pickle is `data_pkl`."""
    torch.save({}, path.with_suffix(".base"))
    with zipfile.ZipFile(path.with_suffix(".base")) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, data_pkl if name.endswith("/data.pkl") else zin.read(name))


@pytest.mark.parametrize("cls", [torch.Tensor, nn.Conv2d])
def test_pickle_that_would_mutate_a_class_changes_nothing(tmp_path, cls):
    # GLOBAL <cls>; BUILD (None, {'pwned': 1}) on the class itself: would set an attribute on it.
    module = cls.__module__ if cls is not torch.Tensor else "torch"
    data = f"\x80\x02c{module}\n{cls.__name__}\nN}}X\x05\x00\x00\x00pwnedK\x01s\x86b.".encode("latin1")
    (tmp_path / "raw.pth").write_bytes(data)  # not a zip: the fallback unpickler reads it
    _torch_zip(tmp_path / "zip.pth", data)  # torch's weights-only unpickler refuses it, then the fallback
    for name in ("raw.pth", "zip.pth"):
        _one_line_error(tmp_path / name, arch="FPN", encoder="resnet18")
        assert "pwned" not in vars(cls), name


@contextlib.contextmanager
def _module(name: str):
    """A module importable under `name` inside the block only."""
    created = [p for p in (name.rsplit(".", i)[0] for i in range(name.count(".") + 1)) if p not in sys.modules]
    for p in created[::-1]:
        sys.modules[p] = types.ModuleType(p)
    try:
        yield sys.modules[name]
    finally:
        for p in created:
            sys.modules.pop(p, None)


@pytest.mark.parametrize("protocol", [2, 4])
def test_classes_a_pickle_names_are_never_constructed_nor_run(tmp_path, fpn, protocol):
    """Classes from allowed packages, importable here, whose construction, BUILD and forward would record."""
    calls = []
    x = image_batch()
    ref = _out(fpn, x)
    with _module("segmentation_models_pytorch.spy") as spy:

        class Made(nn.Module):  # unpickled by calling Made("made")
            def __init__(self, how="init"):
                calls.append(how)
                super().__init__()

            def __reduce__(self):
                return (Made, ("made",))

            def forward(self, x):
                calls.append("forward")
                return x

        class Built(Made):  # unpickled by Built.__new__ and BUILD (__setstate__)
            def __new__(cls, *args):
                calls.append("new")
                return super().__new__(cls)

            def __setstate__(self, state):
                calls.append("setstate")
                super().__setstate__(state)

            __reduce__ = object.__reduce__

        for c in (Made, Built):
            c.__module__, c.__qualname__ = spy.__name__, c.__name__
            setattr(spy, c.__name__, c)
        fpn.segmentation_head[1] = Made()
        fpn.segmentation_head[2] = Built()
        calls.clear()
        torch.save(fpn, tmp_path / "spy.pth", pickle_protocol=protocol)
        loaded = load_model(tmp_path / "spy.pth")
        assert torch.equal(_out(loaded.model, x), ref)
    assert calls == [] and loaded.kind == "whole_model"


def test_model_with_replaced_method_is_rebuilt_without_it(tmp_path, fpn):
    x = image_batch()
    ref = _out(fpn, x)
    object.__setattr__(fpn.segmentation_head, "forward", nn.Identity())  # per-instance override in the pickle
    torch.save(fpn, tmp_path / "odd.pth")
    loaded = load_model(tmp_path / "odd.pth", classes=CLASSES)
    assert loaded.kind == "whole_model"
    assert "forward" not in vars(loaded.model.segmentation_head)
    assert torch.equal(_out(loaded.model, x), ref)


def _private_torch_attributes(source: str) -> list[str]:
    """Every attribute chain torch.x.y... in the code (not in strings) with a part that starts with '_'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            parts, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "torch" and any(p.startswith("_") for p in parts):
                found.append(".".join(["torch", *reversed(parts)]))
    return found


def test_package_uses_no_private_torch_api_nor_opcode_walking():
    sources = {p.name: p.read_text() for p in sorted(PACKAGE.glob("*.py"))}
    assert any("def load_model" in s for s in sources.values())
    for name, source in sources.items():
        assert _private_torch_attributes(source) == [], name
        for word in ("_weights_only_unpickler", "_get_allowed_globals", "pickletools", "genops", "import torch._"):
            assert word not in source, (name, word)
    assert "torch._utils._rebuild_tensor_v2" in _private_torch_attributes("torch._utils._rebuild_tensor_v2(x)")


# ----------------------------------------------------------------------------------------------------------------
# Whole models, state_dicts
# ----------------------------------------------------------------------------------------------------------------


def test_whole_model_pickles(tmp_path):
    model = tiny_fpn()
    x = image_batch()
    torch.save(model, tmp_path / "best_model_FPN.pth")
    torch.save({"epoch": 3, "model": model}, tmp_path / "in_dict.pth")
    torch.save(nn.DataParallel(model), tmp_path / "dataparallel.pth")

    for name in ("best_model_FPN.pth", "in_dict.pth", "dataparallel.pth"):
        path = tmp_path / name
        loaded = load_model(path, arch="Unet", encoder="resnet34", classes=CLASSES)
        assert loaded.kind == "whole_model" and loaded.kind in KINDS
        assert (loaded.arch, loaded.encoder) == ("FPN", "resnet18"), name  # what the pickle says, not the config
        assert loaded.num_classes == 5 and loaded.classes == CLASSES
        assert loaded.sha256 == _sha(path)
        assert not loaded.model.training
        assert next(loaded.model.parameters()).device.type == "cpu"
        assert torch.equal(_out(loaded.model, x), _out(model, x)), name


def test_whole_pickle_decoder_settings_come_from_its_init_args(tmp_path):
    """Settings that leave no trace in the weights' shapes (interpolation, upsampling) are read from the file."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.FPN(
        "resnet18",
        encoder_weights=None,
        classes=3,
        decoder_pyramid_channels=48,
        decoder_segmentation_channels=64,
        decoder_merge_policy="cat",
        decoder_interpolation="bilinear",
        upsampling=2,
    ).eval()
    torch.save(model, tmp_path / "fpn.pth")
    x = image_batch()
    loaded = load_model(tmp_path / "fpn.pth")
    assert loaded.model_kwargs is not None
    assert loaded.model_kwargs["decoder_interpolation"] == "bilinear" and loaded.model_kwargs["upsampling"] == 2
    assert any("init arguments" in n for n in loaded.notes)
    assert torch.equal(_out(loaded.model, x), _out(model, x))


def test_pickles_torch_weights_only_cannot_read_are_recovered(tmp_path, sigmoid_fpn):
    """Protocol-4 framing and the legacy (pre-1.6) format: torch's weights-only unpickler refuses them."""
    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    torch.save(sigmoid_fpn, tmp_path / "p4.pth", pickle_protocol=4)
    torch.save(sigmoid_fpn, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(
        {"epoch": 2, "best_iou": np.float64(0.5), "model_state_dict": sigmoid_fpn.state_dict()},
        tmp_path / "legacy_sd.pth",
        _use_new_zipfile_serialization=False,
    )
    for name in ("p4.pth", "legacy.pth"):
        loaded = load_model(tmp_path / name)
        assert loaded.kind == "whole_model", name
        assert any("fallback" in n for n in loaded.notes), name
        assert (loaded.arch, loaded.encoder, loaded.activation) == ("FPN", "resnet18", "sigmoid")
        assert torch.equal(_out(loaded.model, x), ref), name
    loaded = load_model(tmp_path / "legacy_sd.pth", arch="FPN", encoder="resnet18", activation="sigmoid")
    assert loaded.kind == "state_dict" and torch.equal(_out(loaded.model, x), ref)


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
    from safetensors.torch import save_file

    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    state = sigmoid_fpn.state_dict()
    torch.save(state, tmp_path / "plain.pth")
    torch.save(
        {
            "epoch": 12,
            "best_iou": np.float64(0.83),
            "args": argparse.Namespace(lr=1e-3),
            "model_state_dict": state,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3}]},
        },
        tmp_path / "wrapped.pth",
    )
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dataparallel.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "plain.safetensors", metadata={"format": "pt"})

    for name in ("plain.pth", "wrapped.pth", "dataparallel.pth", "plain.safetensors"):
        loaded = load_model(tmp_path / name, arch="FPN", encoder="resnet18", classes=CLASSES, activation="sigmoid")
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
    msg = _one_line_error(tmp_path / "sd.pth", arch="FPN", encoder="resnet34")
    assert "resnet34" in msg and "missing keys" in msg


# ----------------------------------------------------------------------------------------------------------------
# The project's format
# ----------------------------------------------------------------------------------------------------------------


def test_project_format_round_trip(tmp_path, sigmoid_fpn):
    from safetensors import safe_open

    x = image_batch()
    for name in ("ckpt.pth", "ckpt.safetensors"):  # detected by content, whatever the extension
        path = tmp_path / name
        save_checkpoint(
            path,
            sigmoid_fpn,
            arch="FPN",
            encoder="resnet18",
            classes=CLASSES,
            img_size=(64, 32),
            activation="sigmoid",
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            extra={"epoch": 4},
        )
        with safe_open(str(path), "pt") as f:
            header = f.metadata()
            assert set(f.keys()) == set(sigmoid_fpn.state_dict())
        meta = json.loads(header["meta"])
        assert header["format"] == FORMAT and meta["epoch"] == 4 and meta["arch"] == "FPN"
        assert meta["model_kwargs"]["decoder_pyramid_channels"] == 32 and "encoder_weights" not in meta["model_kwargs"]

        loaded = load_model(path, arch="Unet", encoder="resnet34")  # the checkpoint's meta wins over the config
        assert loaded.kind == "project"
        assert (loaded.arch, loaded.encoder, loaded.classes) == ("FPN", "resnet18", CLASSES)
        assert loaded.img_size == (64, 32)
        assert loaded.mean == pytest.approx((0.485, 0.456, 0.406))
        assert loaded.std == pytest.approx((0.229, 0.224, 0.225))
        assert loaded.outputs_probabilities is True and loaded.num_classes == 5
        assert loaded.sha256 == _sha(path)
        assert torch.equal(_out(loaded.model, x), _out(sigmoid_fpn, x))


def test_project_format_keeps_init_args_shapes_cannot_tell(tmp_path):
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.FPN(
        "resnet18",
        encoder_weights=None,
        classes=2,
        decoder_pyramid_channels=32,
        decoder_segmentation_channels=32,
        decoder_interpolation="bilinear",
        upsampling=2,
    ).eval()
    save_checkpoint(tmp_path / "m.pth", model, arch="FPN", encoder="resnet18", classes=["a", "b"], img_size=(64, 64))
    x = image_batch()
    assert torch.equal(_out(load_model(tmp_path / "m.pth").model, x), _out(model, x))


def test_legacy_project_format_still_loads(tmp_path, sigmoid_fpn):
    """{"format": "seedling-xai/1", "state_dict", "meta"} written with torch.save, as earlier versions did."""
    meta = {
        "arch": "FPN",
        "encoder": "resnet18",
        "classes": CLASSES,
        "img_size": [64, 32],
        "activation": "sigmoid",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "epoch": 3,
    }
    state = {k: v.detach().cpu() for k, v in sigmoid_fpn.state_dict().items()}
    torch.save({"format": "seedling-xai/1", "state_dict": state, "meta": meta}, tmp_path / "v1.pth")
    torch.save({"format": "seedling-xai/9", "state_dict": state, "meta": meta}, tmp_path / "v9.pth")
    x = image_batch()

    loaded = load_model(tmp_path / "v1.pth", classes=CLASSES)
    assert loaded.kind == "project"
    assert (loaded.arch, loaded.encoder, loaded.activation) == ("FPN", "resnet18", "sigmoid")
    assert loaded.img_size == (64, 32) and loaded.mean == (0.5, 0.5, 0.5)
    assert torch.equal(_out(loaded.model, x), _out(sigmoid_fpn, x))
    assert "seedling-xai/9" in _one_line_error(tmp_path / "v9.pth")


# ----------------------------------------------------------------------------------------------------------------
# Old pickles naming classes that are not installed here
# ----------------------------------------------------------------------------------------------------------------


def _save_as_smp_03(model: nn.Module, path: Path, ran: list[str], wrap=lambda m: m) -> None:
    """Save `model` as smp 0.3.x pickled it: encoder blocks from `pretrainedmodels`, the model class from
    `segmentation_models_pytorch.fpn.model`, no init arguments recorded; those modules are gone afterwards."""
    from segmentation_models_pytorch.decoders.fpn.model import FPN
    from torchvision.models.resnet import BasicBlock

    with _module("pretrainedmodels.models.senet") as senet, _module("segmentation_models_pytorch.fpn.model") as old:

        class SEResNeXtBottleneck(BasicBlock):
            def __setstate__(self, state):  # must never run at load time
                ran.append("setstate")
                super().__setstate__(state)

        class OldFPN(FPN):
            pass

        SEResNeXtBottleneck.__module__, SEResNeXtBottleneck.__qualname__ = senet.__name__, "SEResNeXtBottleneck"
        OldFPN.__module__, OldFPN.__name__, OldFPN.__qualname__ = old.__name__, "FPN", "FPN"
        senet.SEResNeXtBottleneck = SEResNeXtBottleneck
        old.FPN = OldFPN
        for m in model.get_submodule("encoder").modules():
            if type(m) is BasicBlock:
                m.__class__ = SEResNeXtBottleneck
        model.__class__ = OldFPN
        del model._hub_mixin_config
        torch.save(wrap(model), path)


def test_pickle_naming_modules_not_installed_is_recovered(tmp_path, sigmoid_fpn):
    from segmentation_models_pytorch.decoders.fpn.model import FPN

    x = image_batch()
    ref = _out(sigmoid_fpn, x)
    ran: list[str] = []
    _save_as_smp_03(sigmoid_fpn, tmp_path / "best_model_FPN.pth", ran)

    loaded = load_model(tmp_path / "best_model_FPN.pth", arch="FPN", encoder="resnet18", classes=CLASSES)
    assert loaded.kind == "whole_model"
    assert (loaded.arch, loaded.encoder, loaded.num_classes) == ("FPN", "resnet18", 5)
    assert loaded.activation == "sigmoid" and loaded.outputs_probabilities is True  # read off the old head
    assert type(loaded.model) is FPN and not loaded.model.training
    assert any("weights' shapes" in n for n in loaded.notes)
    assert torch.equal(_out(loaded.model, x), ref)
    assert ran == [] and "pretrainedmodels" not in sys.modules


def test_trusted_pickle_with_missing_classes_gets_stand_ins_for_them(tmp_path, fpn):
    x = image_batch()
    ref = _out(fpn, x)
    ran: list[str] = []
    _save_as_smp_03(fpn, tmp_path / "mixed.pth", ran, wrap=lambda m: {"model": m, "net": TinyNet()})
    assert "TinyNet" in _one_line_error(tmp_path / "mixed.pth")

    loaded = load_model(tmp_path / "mixed.pth", trust_checkpoint=True)
    assert loaded.kind == "trusted_pickle" and (loaded.arch, loaded.encoder) == ("FPN", "resnet18")
    assert torch.equal(_out(loaded.model, x), ref)
    assert ran == [] and "pretrainedmodels" not in sys.modules


def test_pickle_that_no_longer_fits_installed_classes_is_rebuilt(tmp_path, fpn):
    """Importable classes, but the pickled objects lack attributes the installed code needs (older smp)."""
    x = image_batch()
    ref = _out(fpn, x)
    del fpn.encoder._depth  # an attribute the installed ResNetEncoder.forward reads
    torch.save(fpn, tmp_path / "old.pth")
    loaded = load_model(tmp_path / "old.pth", classes=CLASSES)
    assert loaded.kind == "whole_model"
    assert torch.equal(_out(loaded.model, x), ref)


# ----------------------------------------------------------------------------------------------------------------
# Bad files and mismatches
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")
def test_missing_directory_truncated_and_foreign_files(tmp_path, fpn):
    with pytest.raises(XAIError, match="not found"):
        load_model(tmp_path / "nope.pth")
    with pytest.raises(XAIError, match="not a file"):
        load_model(tmp_path)

    torch.save(fpn, tmp_path / "good.pth")
    save_checkpoint(
        tmp_path / "good.safetensors", fpn, arch="FPN", encoder="resnet18", classes=CLASSES, img_size=(64, 32)
    )
    data = (tmp_path / "good.pth").read_bytes()
    st = (tmp_path / "good.safetensors").read_bytes()
    for name, blob in (
        ("truncated.pth", data[: len(data) // 2]),
        ("head.pth", data[:100]),
        ("text.pth", b"hello, not a checkpoint\n"),
        ("empty.pth", b""),
        ("truncated.safetensors", st[: len(st) // 2]),
    ):
        (tmp_path / name).write_bytes(blob)
        _one_line_error(tmp_path / name, arch="FPN", encoder="resnet18")

    torch.jit.save(torch.jit.script(nn.Conv2d(3, 2, 1)), tmp_path / "scripted.pt")
    assert "TorchScript" in _one_line_error(tmp_path / "scripted.pt", trust_checkpoint=True)


def test_class_count_mismatch(tmp_path):
    model = tiny_fpn(classes=4)
    torch.save(model, tmp_path / "whole.pth")
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    save_checkpoint(
        tmp_path / "proj.pth", model, arch="FPN", encoder="resnet18", classes=CLASSES[:4], img_size=(64, 32)
    )
    for name in ("whole.pth", "sd.pth", "proj.pth"):
        msg = _one_line_error(tmp_path / name, arch="FPN", encoder="resnet18", classes=CLASSES)
        assert "checkpoint has 4 output classes but the config lists 5" in msg, msg
    assert load_model(tmp_path / "sd.pth", arch="FPN", encoder="resnet18", classes=CLASSES[:4]).num_classes == 4
