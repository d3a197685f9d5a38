import torch

from lit_nst.objective.clamping import clamp_for_loss


def test_the_loss_sees_the_clamped_picture():
    image = torch.tensor([-0.5, 0.25, 1.5])
    assert torch.equal(clamp_for_loss(image), torch.tensor([0.0, 0.25, 1.0]))


def test_out_of_range_pixels_get_a_gradient_only_towards_the_range():
    image = torch.tensor([-0.5, -0.5, 0.25, 0.25, 1.5, 1.5], requires_grad=True)
    upstream = torch.tensor([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])  # descent moves each pixel by −upstream
    clamp_for_loss(image).backward(upstream)
    # below 0: only the gradient that raises it; inside: all; above 1: only the gradient that lowers it
    assert torch.equal(image.grad, torch.tensor([-1.0, 0.0, -1.0, 1.0, 0.0, 1.0]))
