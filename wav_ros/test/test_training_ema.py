"""The weight EMA: the average it keeps, the weights it lends to checkpoints, its saved state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wav_ros.training.ema import WeightEMA


def linear() -> nn.Linear:
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    return layer


def test_the_average_follows_the_ramped_decay():
    layer = linear()
    ema = WeightEMA(dict(layer.named_parameters()), decay=0.2)
    expected = torch.zeros(1, 2)
    for n, value in enumerate([1.0, 2.0, 4.0, 8.0]):
        with torch.no_grad():
            layer.weight.fill_(value)
        decay = min(0.2, (1 + n) / (10 + n))  # 0.1, 0.18, then 0.2
        expected = decay * expected + (1 - decay) * value
        ema.update()
        torch.testing.assert_close(ema.shadow["weight"], expected)
    assert ema.current_decay() == 0.2


def test_averaged_weights_are_lent_then_the_trained_ones_restored():
    layer = linear()
    ema = WeightEMA(dict(layer.named_parameters()), decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(3.0)
    ema.update()
    average = ema.shadow["weight"].clone()
    assert not torch.equal(average, layer.weight.detach())
    with ema.averaged_weights():
        torch.testing.assert_close(layer.weight.detach(), average)
    torch.testing.assert_close(layer.weight.detach(), torch.full((1, 2), 3.0))
    ema.copy_to_parameters()
    torch.testing.assert_close(layer.weight.detach(), average)


def test_saved_state_resumes_the_same_average_and_refuses_another_setup():
    layer = linear()
    ema = WeightEMA(dict(layer.named_parameters()), decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema.update()
    state = ema.state_dict()
    resumed = WeightEMA(dict(linear().named_parameters()), decay=0.9)
    resumed.load_state_dict(state)
    assert resumed.updates == 1
    torch.testing.assert_close(resumed.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(ValueError, match="same --ema-decay"):
        WeightEMA(dict(linear().named_parameters()), decay=0.99).load_state_dict(state)
    other = nn.Linear(2, 1)  # has a bias the saved average lacks
    with pytest.raises(ValueError, match="other parameters"):
        WeightEMA(dict(other.named_parameters()), decay=0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(dict(layer.named_parameters()), decay=1.0)


def test_a_checkpoint_without_an_average_is_not_resumed_with_one(tmp_path):
    from wav_ros.training.trainer import _load_ema_state

    with pytest.raises(ValueError, match="without EMA"):
        _load_ema_state(tmp_path)
