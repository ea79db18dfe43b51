"""Deep supervision in the PyTorch twin (config "deep_supervision": one loss weight per coarse decoder level): logit
heads on the decoder's 1/2, 1/4 ... resolution outputs train with the network and are never exported."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

CONFIG = {"seed": 0, "lr": 1e-2, "precision": "fp32", "network": {"base": 4, "levels": 3, "depths": [1, 1, 1, 1]}}


def _batch(seed=3, size=16):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(2, 1, size, size, size)).astype(np.float32)
    targets = np.zeros((2, 1, size, size, size), np.float32)
    targets[:, :, 4:12, 5:11, 3:13] = 1.0
    clicks = np.concatenate([np.zeros_like(targets), targets * (rng.random(targets.shape) < 0.02),
                             np.zeros_like(targets)], axis=1).astype(np.float32)
    return images, clicks, targets


def test_the_heads_leave_the_networks_answer_as_it_is_and_answer_on_coarser_grids():
    from training.torch_bridge import DeepSupervision, InteractiveVNet

    torch.manual_seed(0)
    net = InteractiveVNet(base=4, levels=3, depths=(1, 1, 1, 1)).eval()
    supervised = DeepSupervision(net, [0.5, 0.25]).eval()
    images, clicks, _ = (torch.from_numpy(a) for a in _batch())
    with torch.no_grad():
        logits, coarse = supervised(images, clicks)
        torch.testing.assert_close(logits, net(images, clicks), rtol=0, atol=0)
    assert [tuple(c.shape) for c in coarse] == [(2, 1, 8, 8, 8), (2, 1, 4, 4, 4)]


def test_the_coarse_loss_compares_each_head_with_the_target_averaged_to_its_grid():
    from training.torch_bridge import deep_supervision_loss, interactive_loss

    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., :4, :, :] = 1.0
    right = torch.full((1, 1, 4, 4, 4), -20.0)
    right[..., :2, :, :] = 20.0  # the target's top half, on the half-resolution grid
    wrong = -right
    assert float(deep_supervision_loss([right], target, [0.5])) < 0.01
    assert float(deep_supervision_loss([wrong], target, [0.5])) == pytest.approx(
        0.5 * float(interactive_loss(wrong, torch.nn.functional.avg_pool3d(target, 2))))


def test_a_deeply_supervised_step_trains_heads_and_network_and_exports_the_network_alone(tmp_path):
    from training.torch_bridge import TorchTrainer, paddle_state

    plain, supervised = TorchTrainer(dict(CONFIG)), TorchTrainer({**CONFIG, "deep_supervision": [0.5, 0.25]})
    torch.testing.assert_close(plain.net.state_dict(), supervised.net.state_dict())  # same seed, same start
    heads_before = [h.weight.detach().clone() for h in supervised.supervised.heads]
    assert all(float(b.abs().max()) == 0 for b in heads_before)  # zero heads: no pull on a trained network at first
    images, clicks, targets = _batch()
    loss_plain = plain.train_step(images, clicks, targets, CONFIG["lr"])
    loss_supervised = supervised.train_step(images, clicks, targets, CONFIG["lr"])
    assert loss_supervised > loss_plain  # the coarse terms are added
    # first step: only the heads learn (the clip norm, which counts the heads, moves AdamW's steps by its eps alone)
    torch.testing.assert_close(plain.net.state_dict(), supervised.net.state_dict(), rtol=0, atol=1e-4)
    assert all(not torch.equal(h.weight, b) for h, b in zip(supervised.supervised.heads, heads_before))
    for trainer in (plain, supervised):
        trainer.train_step(images, clicks, targets, CONFIG["lr"])
    # then the coarse heads' gradient reaches the decoder: the network's own weights move differently
    differ = [name for name, p in plain.net.named_parameters()
              if not torch.allclose(p, supervised.net.state_dict()[name], rtol=0, atol=1e-3)]
    assert any(name.startswith("decoders.1") for name in differ)
    assert set(paddle_state(supervised.net)) == set(paddle_state(plain.net))  # nothing of the heads exported

    supervised.save(tmp_path, 1)
    resumed = TorchTrainer({**CONFIG, "deep_supervision": [0.5, 0.25]})
    assert resumed.resume(tmp_path) == 1
    torch.testing.assert_close(resumed.supervised.heads.state_dict(), supervised.supervised.heads.state_dict())
    torch.testing.assert_close(resumed.net.state_dict(), supervised.net.state_dict())


def test_deep_supervision_needs_one_weight_per_coarse_level_and_the_pytorch_twin():
    from training.torch_bridge import TorchTrainer

    with pytest.raises(ValueError, match="deep_supervision .* 1..2 levels"):
        TorchTrainer({**CONFIG, "deep_supervision": [0.5, 0.25, 0.1]})  # 3 levels: coarse ones are 1 and 2
    pytest.importorskip("paddle")
    from training.paddle_trainer import PaddleTrainer

    with pytest.raises(ValueError, match="PyTorch twin only"):
        PaddleTrainer({**CONFIG, "deep_supervision": [0.5]})


def test_the_heads_can_learn_faster_than_the_network_they_sit_on():
    """"deep_supervision_lr_scale": the heads' learning rate over the network's (new layers on a trained network);
    kept through a checkpoint."""
    from training.torch_bridge import TorchTrainer

    config = {**CONFIG, "lr": 1e-4, "deep_supervision": [0.5], "deep_supervision_lr_scale": 50.0}
    trainer = TorchTrainer(config)
    images, clicks, targets = _batch()
    trainer.train_step(images, clicks, targets, 1e-4)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-4, 5e-3])
    # AdamW's first step moves each weight by about its group's rate
    assert float(trainer.supervised.heads[0].weight.abs().max()) == pytest.approx(5e-3, rel=0.05)
    assert float((trainer.net.head.weight - TorchTrainer(config).net.head.weight).abs().max()) < 1.5e-4
