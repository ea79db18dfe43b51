"""The boundary loss (training.boundary_loss): the signed distance it reads and what it adds to both trainers' loss."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _ball(shape=(32, 32, 32), centre=(16, 16, 16), radius=8.0):
    grid = np.indices(shape).astype(np.float32)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre))) <= radius


def test_the_signed_distance_is_the_distance_to_the_edge_negative_inside_and_zero_without_an_edge():
    from training.boundary_loss import signed_distance

    masks = np.zeros((3, 1, 32, 32, 32), np.float32)
    masks[0, 0] = _ball()
    masks[2, 0] = 1  # full: no edge either
    distance = signed_distance(masks)
    assert distance.shape == masks.shape and distance.dtype == np.float32
    assert distance[0, 0, 16, 16, 16] == distance[0].min() < -6  # the centre lies deepest (~radius, voxelised)
    assert distance[0, 0, 16, 16, 29] == pytest.approx(5.0, abs=0.01)  # 5 voxels beyond the ball's edge at x 24
    assert distance[0, 0, 16, 16, 24] == 0.0 and distance[0, 0, 16, 16, 25] == 1.0  # Maurer: edge 0, next 1
    assert ((distance[0] < 0) <= (masks[0] > 0)).all() and ((distance[0] > 0) == (masks[0] == 0)).all()
    assert not distance[1].any() and not distance[2].any()  # an empty or full example adds nothing


def test_the_boundary_loss_makes_a_far_leak_cost_more_than_a_near_one_and_both_frameworks_agree():
    import paddle

    from training.paddle_trainer import dice_bce_loss
    from training.torch_bridge import interactive_loss

    target = np.zeros((2, 1, 32, 32, 32), np.float32)
    target[:, 0] = _ball()
    logits = np.where(target > 0, 4.0, -4.0).astype(np.float32)
    logits[0, 0, 14:18, 14:18, 25:27] = 1.0  # a leak just outside the edge in example 0 ...
    logits[1, 0, 14:18, 14:18, 28:30] = 1.0  # ... and one of the same size 3 voxels further out in example 1

    def per_example(weight):
        return [float(interactive_loss(torch.from_numpy(logits[i:i + 1]), torch.from_numpy(target[i:i + 1]), 3.0,
                                       boundary_weight=weight)) for i in range(2)]

    near, far = per_example(0.0)
    assert far < near  # BCE and Dice alone: the far leak even costs less (the near one lies in the weighted band)
    near_b, far_b = per_example(0.5)
    # the boundary term adds about 3 voxels' distance more for each of the far leak's 32 voxels (p = 0.731)
    assert (far_b - far) - (near_b - near) == pytest.approx(0.5 * 3 * 32 * 0.731 / 32 ** 3, rel=0.3)
    t = torch.from_numpy(logits).requires_grad_(True)
    interactive_loss(t, torch.from_numpy(target), 3.0).backward()
    plain, t.grad = t.grad.clone(), None
    ours = interactive_loss(t, torch.from_numpy(target), 3.0, boundary_weight=0.5)
    ours.backward()
    extra = t.grad - plain  # what the boundary term adds: pushed down harder the further out
    assert float(extra[1, 0, 15, 15, 29]) > 2 * float(extra[0, 0, 15, 15, 26]) > 0
    assert float(extra[0, 0, 16, 16, 16]) < float(extra[0, 0, 16, 16, 22]) < 0  # inside: pushed up, the deeper the more
    theirs = float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), 3.0, boundary_weight=0.5))
    assert float(ours.detach()) == pytest.approx(theirs, rel=1e-5)
    with torch.no_grad():  # and without the term (Paddle's float32 patch sums drifted by 1e-3 here before _sum)
        assert float(interactive_loss(t, torch.from_numpy(target), 3.0)) == pytest.approx(
            float(dice_bce_loss(paddle.to_tensor(logits), paddle.to_tensor(target), 3.0)), rel=1e-5)
    with torch.no_grad():
        assert float(interactive_loss(t, torch.from_numpy(target), 3.0, boundary_weight=0.0)) == pytest.approx(
            float(interactive_loss(t, torch.from_numpy(target), 3.0)))  # weight 0: the loss as before
