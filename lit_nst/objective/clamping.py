"""The picture as it will be written, [0, 1], for a loss that an unclamped L-BFGS iterate can minimise.

L-BFGS is not clamped between steps (a clamp moves the iterate its curvature history assumes), so its
pixels wander outside [0, 1], and the file clamps them. The loss is therefore taken of the clamped
picture: the written image is the one optimised. Measured on chelsea × Starry Night (gatys.yaml),
the written image's objective after 150 L-BFGS steps at 512 px fell from 543,180 (loss of the unclamped
iterate) to 279,805.

torch's clamp gives a pixel outside [0, 1] no gradient, so a pixel L-BFGS overshoots is stranded there
for good: at 512 px, L-BFGS's second step (a long step from the curvature of one tiny first step)
threw enough pixels out that the run ended as saturated noise (objective 1.5e9). Here such a pixel
keeps its gradient when descent would bring it back into range, and only then.
"""

import torch
from torch import Tensor


class _ClampReturningInward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image: Tensor) -> Tensor:
        ctx.save_for_backward(image)
        return image.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, gradient: Tensor) -> Tensor:
        (image,) = ctx.saved_tensors
        # Descent moves a pixel by −gradient: down from above 1 when the gradient is positive, up from below 0
        # when it is negative.
        returning = ((image > 1.0) & (gradient > 0)) | ((image < 0.0) & (gradient < 0))
        in_range = (image >= 0.0) & (image <= 1.0)
        return gradient * (in_range | returning)


def clamp_for_loss(image: Tensor) -> Tensor:
    """`image` clamped to [0, 1]; gradient as clamp's, except that out-of-range pixels are led back."""
    return _ClampReturningInward.apply(image)
