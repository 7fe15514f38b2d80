"""Target layers by name, activation hooks, and preserved_state's restoring of a model after a block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers import image_batch, tiny_convnet
from xai.errors import XAIError
from xai.layers import (
    ActivationCapture,
    InputCapture,
    LeafActivation,
    deepest_encoder_stage,
    default_target_layer,
    model_device,
    preserved_state,
    resolve_target_layer,
)


class _Encoder(nn.Module):
    """A non-ResNet encoder: stages, a parameter-free activation, a pool and a classifier after them."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stage1 = nn.Conv2d(4, 6, 3, padding=1)
        self.stage2 = nn.Conv2d(6, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8, 2)


class _Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = _Encoder()


class _TupleOut(nn.Module):
    """Returns (None, conv(x), x): the first tensor of the tuple is the conv's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor):
        return None, self.conv(x), x


def test_default_layer_is_the_decoder_else_the_deepest_encoder_stage(fpn):
    assert default_target_layer(fpn) == "decoder"  # what the evidence chose (docs/evidence.md, "Choosing the defaults")
    assert deepest_encoder_stage(fpn) == "encoder.layer4"
    assert default_target_layer(_Wrapped()) == "encoder.stage2"  # not act (no weights), pool nor classifier
    assert default_target_layer(tiny_convnet()) == "features.4"  # no encoder: the last convolution
    with pytest.raises(XAIError, match="no convolution layer"):
        default_target_layer(nn.Sequential(nn.Linear(3, 2)))


@pytest.mark.parametrize("name", [None, "", "auto", "default"])
def test_no_name_resolves_to_the_default_layer(fpn, name):
    resolved, module = resolve_target_layer(fpn, name)
    assert resolved == "decoder" and module is fpn.decoder


def test_a_module_or_a_list_of_one_resolves_to_its_name(fpn):
    """pytorch-grad-cam's spelling: target_layers=[model.encoder.layer4]."""
    assert resolve_target_layer(fpn, fpn.encoder.layer3) == ("encoder.layer3", fpn.encoder.layer3)
    assert resolve_target_layer(fpn, [fpn.encoder.layer4]) == ("encoder.layer4", fpn.encoder.layer4)
    with pytest.raises(XAIError, match="not a submodule of the model"):
        resolve_target_layer(fpn, nn.Conv2d(1, 1, 1))
    with pytest.raises(XAIError, match="one target layer is explained at a time"):
        resolve_target_layer(fpn, [fpn.encoder.layer3, fpn.encoder.layer4])


def test_a_dotted_name_resolves_to_its_module(fpn):
    name, module = resolve_target_layer(fpn, "encoder.layer2.1.conv1")
    assert name == "encoder.layer2.1.conv1" and module is fpn.encoder.layer2[1].conv1


def test_unknown_layer_is_refused_with_the_nearest_names(fpn):
    with pytest.raises(XAIError) as err:
        resolve_target_layer(fpn, "encoder.layer7")
    message = str(err.value)
    assert "\n" not in message and message.startswith("unknown target layer 'encoder.layer7'; nearest valid names: ")
    near = message.split(": ", 1)[1].split(", ")
    assert len(near) == 5 and near[0] == "encoder.layer4" and {"encoder.layer1", "encoder.layer3"} <= set(near)

    with pytest.raises(XAIError) as err:  # nothing close: the top-level names instead
        resolve_target_layer(fpn, "zzz")
    near = str(err.value).split("nearest valid names: ", 1)[1].split(", ")
    assert len(near) == 8 and all(n.count(".") <= 1 for n in near) and near[0] == "encoder"


def test_activation_capture_stores_the_output_until_removed():
    model = tiny_convnet()
    x = image_batch(1, 16, 16)
    with torch.no_grad():
        expected = model.features[:2](x)
        capture = ActivationCapture(model.features[1])
        model(x)
        assert capture.value is not None and torch.equal(capture.value, expected)
        capture.remove()
        assert not model.features[1]._forward_hooks
        model(image_batch(1, 16, 16, seed=1))
    assert torch.equal(capture.value, expected), "a removed hook sees no later forward"


def test_capture_of_a_tuple_output_is_its_first_tensor_and_with_removes_it():
    module = _TupleOut()
    x = image_batch(1, 8, 8)
    with ActivationCapture(module) as capture, torch.no_grad():
        _, conv_out, _ = module(x)
    assert capture.value is conv_out
    assert not module._forward_hooks


def test_input_capture_stores_the_first_input():
    head = nn.Sigmoid()
    logits = torch.randn(1, 2, 4, 4)
    with InputCapture(head) as capture:
        head(logits)
    assert capture.value is logits and not head._forward_hooks


def test_leaf_activation_gradients_flow_from_later_layers_only():
    model = tiny_convnet()
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen network still gives gradients with respect to the layer
    with LeafActivation(model.features[1]) as leaf:
        out = model(image_batch(1, 16, 16))
        out[:, 0].sum().backward()
    assert leaf.value is not None and leaf.value.is_leaf and leaf.value.grad is not None
    assert leaf.value.grad.shape == leaf.value.shape and leaf.value.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())

    module = _TupleOut()
    with LeafActivation(module), pytest.raises(XAIError, match="single tensor"):
        module(image_batch(1, 8, 8))
    assert not module._forward_hooks


def test_preserved_state_restores_flags_and_grad_mode_after_an_error(fpn):
    fpn.train()
    fpn.encoder.layer1.eval()
    fpn.encoder.conv1.weight.requires_grad_(False)
    modes = {n: m.training for n, m in fpn.named_modules()}
    frozen = {n: p.requires_grad for n, p in fpn.named_parameters()}
    with pytest.raises(RuntimeError, match="body"), preserved_state(fpn) as model:
        assert model is fpn and not any(m.training for m in fpn.modules())
        torch.set_grad_enabled(False)
        raise RuntimeError("body")
    assert {n: m.training for n, m in fpn.named_modules()} == modes
    assert {n: p.requires_grad for n, p in fpn.named_parameters()} == frozen
    assert torch.is_grad_enabled()


def test_preserved_state_restores_memory_formats_even_on_error(fpn):
    fpn.encoder.layer1.to(memory_format=torch.channels_last)  # one part was channels_last already
    params = {n: p for n, p in fpn.named_parameters()}
    before = {n: p.is_contiguous() for n, p in params.items() if p.dim() == 4}
    assert not all(before.values()) and any(before.values())
    with pytest.raises(RuntimeError, match="body"), preserved_state(fpn, channels_last=True):
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in fpn.parameters() if p.dim() == 4)
        raise RuntimeError("body")
    assert {n: p.is_contiguous() for n, p in fpn.named_parameters() if p.dim() == 4} == before
    assert all(p is params[n] for n, p in fpn.named_parameters()), "the same parameter objects (optimisers)"


def test_channels_last_under_inference_mode_leaves_trainable_parameters(fpn):
    x = image_batch(1, 32, 64)
    with torch.no_grad():
        expected = fpn(x)
    with torch.inference_mode(), preserved_state(fpn, channels_last=True):
        got = fpn(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # other summation order
    assert not any(p.is_inference() for p in fpn.parameters())  # an optimiser could not update those
    assert not any(b.is_inference() for b in fpn.buffers())


def test_model_device():
    assert model_device(tiny_convnet()) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters
