"""BiSegUNet in PyTorch: binarization, shapes, ablations, presets."""
from __future__ import annotations

import pytest
import torch

from bisegunet_training.config import ConfigError
from bisegunet_training.model import BinaryConv2d, ModelConfig, binary_layers, build_model, load_model_config, \
    set_binarized

torch.set_num_threads(1)


@pytest.mark.parametrize("estimator", ["ste", "approx_sign"])
def test_binary_weight_is_plus_minus_alpha_per_channel(estimator):
    conv = BinaryConv2d(8, 6, 3, padding=1, estimator=estimator)
    conv.weight.data[0, 0, 0, 0] = 0.0          # sign(0) = +1
    conv.binarized = True
    w = conv.binary_weight().detach()
    alpha = conv.alpha.detach()
    for c in range(6):
        assert set(w[c].unique().tolist()) == {alpha[c].item(), -alpha[c].item()}
    assert w[0, 0, 0, 0] == alpha[0]
    torch.testing.assert_close(alpha, conv.weight.abs().mean(dim=(1, 2, 3)))   # initialised to mean |W|


@pytest.mark.parametrize("estimator", ["ste", "approx_sign"])
def test_gradients_reach_latent_weights_and_alpha(estimator):
    conv = BinaryConv2d(4, 4, 3, padding=1, estimator=estimator)
    conv.binarized = True
    conv(torch.randn(2, 4, 8, 8)).pow(2).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.log_alpha.grad is not None and conv.log_alpha.grad.abs().sum() > 0
    assert (conv.alpha > 0).all()


def test_estimators_differ_in_backward_and_clip_outside_one():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    from bisegunet_training.model.binary import approx_sign, ste

    ste(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    w.grad = None
    approx_sign(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 2.0, 1.0, 0.0]      # 2 - 2|w|


def test_irnet_standardisation_is_in_the_binarized_forward_pass():
    """weight_standardization=true: a binary layer of the built model convolves with sign(standardised W)
    times alpha, alpha initialised to the standardised weights' mean |W|. Weights whose channel means are
    far from zero make the test sharp: there sign(W) is one sign per channel, sign(standardised W) is not."""
    from dataclasses import replace

    import torch.nn.functional as F

    model = build_model(replace(load_model_config("tiny"), weight_standardization=True))
    _, conv = binary_layers(model)[0]
    with torch.no_grad():
        offset = torch.tensor([0.5, -0.5]).repeat(conv.out_channels // 2 + 1)[:conv.out_channels]
        conv.weight.copy_(0.1 * torch.randn_like(conv.weight) + offset.view(-1, 1, 1, 1))
    conv.binarized = True
    w = conv.weight.detach()
    standardised = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
    alpha = standardised.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    sign = torch.where(standardised >= 0, 1.0, -1.0)
    x = torch.randn(1, conv.in_channels, 8, 8)
    expected = F.conv2d(x, sign * alpha, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    plain = F.conv2d(x, torch.where(w >= 0, 1.0, -1.0) * alpha, conv.bias, conv.stride, conv.padding,
                     conv.dilation, conv.groups)
    assert not torch.allclose(expected, plain, atol=1e-3)                # the two readings differ here
    torch.testing.assert_close(conv(x).detach(), expected, rtol=1e-4, atol=1e-4)


def test_float_mode_is_an_ordinary_conv():
    conv = BinaryConv2d(3, 5, 3, padding=1, bias=True)
    plain = torch.nn.Conv2d(3, 5, 3, padding=1, bias=True)
    plain.load_state_dict({"weight": conv.weight, "bias": conv.bias})
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(conv(x), plain(x))


@pytest.mark.parametrize("size", [(64, 128), (96, 96), (50, 70)])
def test_logits_at_input_resolution_for_any_size(size):
    model = build_model(load_model_config("tiny")).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 19, *size)


@pytest.mark.parametrize("entry,output", [(1, 2), (1, 4), (1, 8), (2, 2), (2, 8), (4, 4), (4, 8)])
def test_entry_and_output_strides_keep_full_size_logits(entry, output):
    """The decoder stops at output_stride (the head sees that resolution of the padded input) and the logits
    come back at the input size; the entry's strided convs run before the stem."""
    model = build_model(load_model_config("tiny", [f"entry_stride={entry}", f"output_stride={output}"])).eval()
    seen = {}
    model.stem.register_forward_hook(lambda m, i, o: seen.update(stem=tuple(o.shape[-2:])))
    model.head.register_forward_hook(lambda m, i, o: seen.update(head=tuple(o.shape[-2:])))
    padded = tuple(-(-n // (16 * entry)) * 16 * entry for n in (50, 70))   # to the network stride, 16 x entry
    with torch.no_grad():
        assert model(torch.randn(1, 3, 50, 70)).shape == (1, 19, 50, 70)
    assert seen == {"stem": tuple(n // entry for n in padded), "head": tuple(n // output for n in padded)}
    assert len(model.fuse) == {1: 4, 2: 3, 4: 2, 8: 1}[output // entry]


@pytest.mark.parametrize("overrides,key", [(["entry_stride=3"], "entry_stride"), (["output_stride=16"], "output_stride"),
                                           (["entry_stride=4", "output_stride=2"], "output_stride")])
def test_bad_strides_are_one_error_naming_the_key(overrides, key):
    with pytest.raises(ValueError, match=f"^{key} must be one of"):
        load_model_config("tiny", overrides)


ABLATIONS = {
    "no capacity block": ["capacity_blocks=0", "decoder_capacity_block=false"],
    "multi-scale + SE": ["capacity_variant=ms_se"],
    "multi-scale + CBAM": ["capacity_variant=ms_cbam"],
    "without binary branch": ["capacity_branches=[dilated, grouped]"],
    "without dilated branch": ["capacity_branches=[binary, grouped]"],
    "without grouped branch": ["capacity_branches=[binary, dilated]"],
    "two capacity blocks": ["capacity_blocks=2"],
    "no channel attention": ["channel_attention=false"],
    "no self-attention": ["attention=false"],
    "all layers binary": ["binary_parts=[stem, encoder, capacity, bottleneck, decoder, head]"],
    "IR-Net standardisation, ste": ["weight_standardization=true", "estimator=ste"],
    "pooled keys and values": ["attention_kv_pool=2"],
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_ablation_builds_and_trains_a_step(name):
    model = build_model(load_model_config("tiny", ABLATIONS[name]))
    set_binarized(model, True)
    logits = model(torch.randn(2, 3, 32, 64))
    logits.mean().backward()
    assert logits.shape == (2, 19, 32, 64)
    assert all(p.grad is not None for p in model.parameters())


def test_capacity_blocks_are_counted_from_the_deepest():
    model = build_model(load_model_config("tiny", ["capacity_blocks=2"]))
    kinds = [type(m).__name__ for m in model.capacity]
    assert kinds == ["Identity", "Identity", "CapacityBlock", "CapacityBlock"]


def test_first_and_last_layers_float_by_default():
    model = build_model(load_model_config("tiny"))
    names = [n for n, _ in binary_layers(model)]
    assert not any(n.startswith(("stem", "head")) for n in names)
    assert any(n.startswith("encoder") for n in names) and any(n.startswith("capacity") for n in names)


@pytest.mark.parametrize("preset,low,high", [("tiny", 0.1e6, 1.0e6), ("small", 3.0e6, 4.3e6), ("paper", 50e6, 400e6)])
def test_preset_parameter_counts_stay_in_bounds(preset, low, high):
    with torch.device("meta"):
        model = build_model(load_model_config(preset))
    assert low <= sum(p.numel() for p in model.parameters()) <= high


def test_default_model_config_is_the_small_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)     # presets are found from any working directory
    assert ModelConfig() == load_model_config("small") == load_model_config("config/model/small.yaml")
    with pytest.raises(FileNotFoundError, match="shipped: fast, paper, small, tiny"):
        load_model_config("smal")


def test_unknown_config_key_names_the_key():
    with pytest.raises(ConfigError, match="unknown key widht_multiplier; valid keys: name, num_classes"):
        load_model_config("tiny", ["widht_multiplier=2"])
    with pytest.raises(ValueError, match="binary_parts"):
        ModelConfig(binary_parts=["everything"])
