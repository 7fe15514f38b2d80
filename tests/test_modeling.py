"""Building smp models offline, reading off their head (activation, classes), and choosing a device."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from tests.helpers import image_batch, tiny_convnet
from xai.errors import XAIError
from xai.modeling import build_model, count_classes, final_activation, outputs_probabilities, pick_device


def test_build_model_needs_no_download(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("build_model opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = build_model("FPN", "resnet18", 3, decoder_pyramid_channels=32, decoder_segmentation_channels=32)
    assert type(model).__name__ == "FPN" and count_classes(model) == 3
    p5 = dict(model.named_modules())["decoder.p5"]
    assert isinstance(p5, nn.Conv2d) and p5.out_channels == 32  # decoder arguments reach smp
    with torch.no_grad():
        assert model.eval()(image_batch(1, 32, 64)).shape == (1, 3, 32, 64)


@pytest.mark.parametrize(
    "arch,encoder,kwargs,message",
    [
        ("Nope", "resnet18", {}, "unknown architecture or encoder (Nope, resnet18): "),
        ("FPN", "nope_encoder", {}, "unknown architecture or encoder (FPN, nope_encoder): "),
        ("FPN", "resnet18", {"activation": "bogus"}, "cannot build FPN with encoder resnet18: Activation should be"),
        ("FPN", "resnet18", {"decoder_merge_policy": "bogus"}, "cannot build FPN with encoder resnet18: "),
    ],
)
def test_build_model_refuses_in_one_line(arch, encoder, kwargs, message):
    with pytest.raises(XAIError) as err:
        build_model(arch, encoder, 3, **kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    "activation,probabilities",
    [(None, False), ("identity", False), ("sigmoid", True), ("softmax2d", True), ("logsoftmax", False)],
)
def test_smp_heads_with_and_without_an_activation(activation, probabilities):
    model = build_model("FPN", "resnet18", 3, activation=activation, decoder_pyramid_channels=16)
    act = final_activation(model)
    if activation in (None, "identity"):
        assert act is None
    else:
        assert act is list(model.get_submodule("segmentation_head").children())[-1]
    assert outputs_probabilities(model) is probabilities
    if activation == "softmax2d":
        with torch.no_grad():
            y = model.eval()(image_batch(1, 32, 32))
        torch.testing.assert_close(y.sum(1), torch.ones(1, 32, 32))


def test_generic_models_ending_in_sigmoid_or_softmax():
    conv = nn.Conv2d(3, 2, 1)
    sigmoid, softmax = nn.Sigmoid(), nn.Softmax(dim=1)
    assert final_activation(nn.Sequential(conv, sigmoid)) is sigmoid
    assert outputs_probabilities(nn.Sequential(conv, sigmoid))
    assert final_activation(nn.Sequential(conv, softmax)) is softmax
    assert final_activation(nn.Sequential(conv, nn.LogSoftmax(dim=1))) is not None
    assert not outputs_probabilities(nn.Sequential(conv, nn.LogSoftmax(dim=1)))
    assert final_activation(nn.Sequential(conv, nn.ReLU())) is None
    assert final_activation(tiny_convnet()) is None and not outputs_probabilities(tiny_convnet())

    class Headed(nn.Module):  # an smp-like head without smp's Activation wrapper
        def __init__(self, last: nn.Module):
            super().__init__()
            self.segmentation_head = nn.Sequential(nn.Conv2d(3, 2, 1), last)

    assert final_activation(Headed(softmax)) is softmax
    assert final_activation(Headed(nn.Identity())) is None


def test_count_classes(fpn):
    assert count_classes(fpn) == 5
    assert count_classes(tiny_convnet(classes=3)) is None  # no smp segmentation head


def test_pick_device_auto_and_cpu(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == pick_device("") == pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(
    "name,cuda,count,message",
    [
        ("gpu0", False, 0, "unknown device 'gpu0'"),
        ("cuda", False, 0, "device 'cuda' asked for, but CUDA is not available here"),
        ("cuda:3", True, 2, "device 'cuda:3' asked for, but only 2 CUDA device(s) exist"),
        ("meta", False, 0, "unsupported device 'meta'"),
    ],
)
def test_pick_device_refuses_unavailable_devices(monkeypatch, name, cuda, count, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(XAIError) as err:
        pick_device(name)
    assert str(err.value).startswith(message)


def test_pick_device_accepts_an_existing_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)


def test_pick_device_refuses_mps_where_absent(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(XAIError, match="MPS is not available"):
        pick_device("mps")
