"""Block by block: a picture's whole objective and its exact gradient, in the memory of one block.

A Gram is a sum over positions, G = Σ_blocks F_b F_bᵀ / (C·H·W), and so is the content term; so are the moments
Σ f and Σ f fᵀ that every additive style statistic is made of (lit_nst.objective.statistics). Galerne et al.
("Scaling Painting Style Transfer", EGSR 2024) evaluate the global objective that way: a first pass without
gradients adds up every style layer's moments over the blocks; a second pass runs each block with gradients and
hands its moments the gradient of the global loss with respect to the global moments (autograd, once a step),
which, those known, depends on a block only through its own features. The objective keeps its meaning
(lit_nst.objective.objective); this is how it is evaluated. (`sliced` sorts all positions: it is not a sum, and is
never tiled.)

Each block owns a partition of every layer's positions, the cells of its inner pixels, and backpropagates from
those alone, so the blocks' pixel gradients add up to the exact gradient. Its halo only has to make the owned
features exact: the deepest layer's reach (70 px for relu5_1), rounded up to that layer's stride so every
pooling grid lines up (80 px). Under DDP the ranks share the blocks, sum their moments and then their gradients,
so every rank holds the whole picture's terms and gradient: N processes make the 1-process picture.
"""

import torch
from torch import Tensor, distributed
from torch.autograd.function import once_differentiable

from lit_nst.objective.blocks import Block, Share, block_geometry, block_windows
from lit_nst.objective.canvas import image_shape
from lit_nst.objective.losses import total_variation
from lit_nst.objective.objective import JobTargets, LossTerms, RegionTargets, StyleObjective
from lit_nst.objective.statistics import Moments, moment_sums, normalised


class BlockWalk:
    """`objective` evaluated block by block: the same terms and gradient, to float rounding."""

    def __init__(self, objective: StyleObjective, tile_size: int, share: Share | None = None) -> None:
        self.objective = objective
        self.tile_size = tile_size
        self.share = share or Share()
        self.stride, self.halo = block_geometry(objective)
        self._blocks: dict[tuple, list[Block]] = {}

    @property
    def shares_jobs(self) -> bool:
        """Every process evaluates every job (its share of the blocks), so terms are whole on every rank."""
        return self.share.world > 1

    def describe(self, shapes: list[tuple[int, int]]) -> str:
        counts = [len(self.blocks(shape)) for shape in shapes]
        count = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
        shared = f", shared by {self.share.world} processes" if self.shares_jobs else ""
        return (
            f"objective evaluated in blocks of at most {self.tile_size} px with a halo of {self.halo} px "
            f"({count} per picture at the output size{shared})"
        )

    def blocks(self, shape: tuple[int, int]) -> list[Block]:
        key = (tuple(shape), self.tile_size, self.stride, self.halo)
        if key not in self._blocks:  # asked for every job at every step: laid out once a shape
            windows = block_windows(shape, self.tile_size, self.stride, self.halo)
            self._blocks[key] = [Block(inner, window, shape) for inner, window in windows]
        return self._blocks[key]

    def _mine(self, blocks: list[Block], offset: int = 0) -> list[Block]:
        return [block for index, block in enumerate(blocks) if (index + offset) % self.share.world == self.share.rank]

    def __call__(self, images: Tensor | list[Tensor], job_ids: Tensor | None = None) -> LossTerms:
        """As `StyleObjective.forward`; when shared, every job, whatever `job_ids` says."""
        return self.objective(images, None if self.shares_jobs else job_ids, self.job_terms)

    def job_terms(self, image: Tensor, job: int) -> LossTerms:
        """The terms of job `job` for its (1, 3, h, w) picture; the total's gradient is the untiled one."""
        blocks = self.blocks(image_shape(image))
        if len(blocks) == 1:  # shared too: every rank the same whole picture, no collective (a coarse scale)
            return self.objective.job_terms(image, job)
        objective = self.objective
        content, style, gradients = self._walk(image, objective.targets[job], self._mine(blocks, job))
        weighted = objective.content_weight * content + objective.style_weight * style
        if gradients is not None:
            weighted = _WithGradient.apply(image, weighted, gradients)
        tv = total_variation(image)  # of the pixels: no network, no blocks
        return LossTerms(content, style, tv, weighted + objective.tv_weight * tv)

    def _walk(self, image: Tensor, targets: JobTargets, blocks: list[Block]) -> tuple[Tensor, Tensor, Tensor | None]:
        """(content, style, the weighted sum's gradient for `image` if it requires one) from this rank's blocks."""
        wants_gradient = torch.is_grad_enabled() and image.requires_grad
        objective, image = self.objective, image.detach()
        # Pass 1, no gradients: the content term and every region's moments, summed over the blocks.
        content = image.new_zeros(1, dtype=torch.float32)
        sums = [{name: zero_sums(objective, name, image) for name in objective.style_layers} for _ in targets.regions]
        with torch.no_grad():
            for block in blocks:
                features = objective.features(block.read(image))
                content += content_sum(objective, features, targets, block)
                for region, region_sums in zip(targets.regions, sums, strict=True):
                    for name, held in region_sums.items():
                        add(held, owned_sums(objective, features, name, block, region))
        content, sums = self._summed_over_ranks(content, sums)
        style, pulls = style_and_pulls(objective, targets.regions, sums, wants_gradient)
        if not wants_gradient:
            return content, style, None
        # Pass 2: each block backpropagates, from the positions it owns, the pulls applied to its own moments.
        gradients = torch.zeros_like(image)
        for block in blocks:
            window = block.read(image).detach().requires_grad_()
            with torch.enable_grad():
                features = objective.features(window)
                surrogate = objective.content_weight * content_sum(objective, features, targets, block)
                pull = iter(pulls)
                for region in targets.regions:
                    for name in objective.style_layers:
                        for part in present(owned_sums(objective, features, name, block, region)):
                            surrogate = surrogate + (next(pull) * part).sum()
                (gradient,) = torch.autograd.grad(surrogate.sum(), window)
            block.read(gradients).add_(gradient)
        if self.shares_jobs:
            # The whole gradient on every rank, before anything downstream reads it: the clamp's backward
            # (clamping.py) decides by its sign, and a sign of one rank's share is not the sign of the sum.
            distributed.all_reduce(gradients)
        return content, style, gradients

    def _summed_over_ranks(self, content: Tensor, sums: list[dict[str, Tensor]]) -> tuple[Tensor, list[dict]]:
        if not self.shares_jobs:
            return content, sums
        content, *moments = all_reduce_together(
            [content, *(total for region_sums in sums for held in region_sums.values() for total in present(held))]
        )
        summed = iter(moments)
        return content, [
            {name: [None if total is None else next(summed) for total in held] for name, held in region_sums.items()}
            for region_sums in sums
        ]

    @torch.no_grad()
    def content_maps(self, image: Tensor) -> dict[str, Tensor]:
        """As `StyleObjective.content_maps`, assembled from the blocks' owned positions."""
        objective, (height, width) = self.objective, image_shape(image)
        blocks = self.blocks((height, width))
        if len(blocks) == 1:
            return objective.content_maps(image)
        maps = {}
        for name in objective.content_layers:
            stride = objective.backbone.strides[name]
            channels = objective.backbone.channels[name]
            maps[name] = image.new_zeros(1, channels, height // stride, width // stride, dtype=torch.float32)
        for block in self._mine(blocks):
            features = objective.features(block.read(image))
            for name, target in maps.items():
                local, picture = block.owned(objective.backbone.strides[name])
                target[..., picture[0], picture[1]] = features[name][..., local[0], local[1]].float()
        if self.shares_jobs:  # each rank filled its own blocks' positions, zeros elsewhere
            for target in maps.values():
                distributed.all_reduce(target)
        return maps

    @torch.no_grad()
    def style_moments(self, image: Tensor) -> dict[str, Moments]:
        """As `StyleObjective.style_moments`, summed over the blocks (a painting at print size is as large as the
        picture)."""
        shape = image_shape(image)
        blocks = self.blocks(shape)
        objective = self.objective
        if len(blocks) == 1:
            return objective.style_moments(image)
        sums = {name: zero_sums(objective, name, image) for name in objective.style_layers}
        for block in self._mine(blocks):
            features = objective.features(block.read(image))
            for name, held in sums.items():
                add(held, owned_sums(objective, features, name, block, None))
        _, (sums,) = self._summed_over_ranks(image.new_zeros(1), [sums])
        return {name: normalised(*held, positions(objective, name, shape)) for name, held in sums.items()}

    def set_targets(self, contents: list[Tensor], styles: list) -> None:
        self.objective.set_targets(contents, styles, self.content_maps, self.style_moments)


class _WithGradient(torch.autograd.Function):
    """`value`, whose gradient with respect to `image` was computed with it (by the block walk)."""

    @staticmethod
    def forward(ctx, image: Tensor, value: Tensor, gradient: Tensor) -> Tensor:
        ctx.save_for_backward(gradient)
        return value.detach().clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (gradient,) = ctx.saved_tensors
        return grad_output.reshape(-1, 1, 1, 1) * gradient, None, None


def style_and_pulls(
    objective: StyleObjective, regions: list[RegionTargets], sums: list[dict[str, list]], wants_gradient: bool
) -> tuple[Tensor, tuple[Tensor, ...] | None]:
    """The style term, (1,), from every region's moment sums over the whole picture; and, where a gradient is wanted,
    d(style_weight · style)/d(each sum), in the order `present` lists them: what each block's own sums are pulled
    by. Autograd on a few small matrices, once a step, in place of a hand-written derivative for each statistic."""
    leaves = [
        {
            name: [None if total is None else total.detach().requires_grad_() for total in held]
            for name, held in one.items()
        }
        for one in sums
    ]
    with torch.enable_grad():
        style = sum(
            weight * objective.moments_loss(name, held[name], region)
            for region, held in zip(regions, leaves, strict=True)
            for name, weight in objective.style_layers.items()
        )
        if not wants_gradient:
            return style.detach(), None
        flat = [total for one in leaves for held in one.values() for total in present(held)]
        return style.detach(), torch.autograd.grad(objective.style_weight * style.sum(), flat)


def positions(objective: StyleObjective, name: str, shape: tuple[int, int]) -> int:
    """h_l·w_l: layer `name`'s positions over a picture of `shape`."""
    stride = objective.backbone.strides[name]
    return (shape[0] // stride) * (shape[1] // stride)


def zero_sums(objective: StyleObjective, name: str, like: Tensor) -> list[Tensor | None]:
    """[Σ f (1, C), or None where the statistic does not use it; Σ f fᵀ (1, C, C)]: zeros to add a layer's blocks to,
    in float32."""
    channels = objective.backbone.channels[name]
    first = like.new_zeros(1, channels, dtype=torch.float32) if objective.statistic.uses_mean else None
    return [first, like.new_zeros(1, channels, channels, dtype=torch.float32)]


def add(sums: list[Tensor | None], parts: tuple[Tensor | None, Tensor]) -> None:
    for total, part in zip(sums, parts, strict=True):
        if total is not None:
            total += part


def present(sums: list[Tensor | None] | tuple) -> list[Tensor]:
    return [total for total in sums if total is not None]


def owned_sums(
    objective: StyleObjective, features: dict[str, Tensor], name: str, block: Block, region: RegionTargets | None
) -> list[Tensor]:
    """A block's share of a layer's moment sums (as `zero_sums`), from the positions it owns, under the region's
    mask if it has one."""
    local, picture = block.owned(objective.backbone.strides[name])
    owned = features[name][..., local[0], local[1]]
    mask = None if region is None or region.masks is None else region.masks[name][..., picture[0], picture[1]]
    return moment_sums(owned, mask, objective.statistic.uses_mean)


def all_reduce_together(pieces: list[Tensor]) -> list[Tensor]:
    """Each piece summed over the ranks, in one collective: flattened together, then viewed apart."""
    flat = torch.cat([piece.flatten() for piece in pieces])
    distributed.all_reduce(flat)
    summed, offset = [], 0
    for piece in pieces:
        summed.append(flat[offset : offset + piece.numel()].view_as(piece))
        offset += piece.numel()
    return summed


def content_sum(objective: StyleObjective, features: dict[str, Tensor], targets: JobTargets, block: Block) -> Tensor:
    """Σ_l w_l · Σ_owned (F_l − T_l)² / (C·h_l·w_l): the block's share of the content term, (1,)."""
    total = 0.0
    for name, weight in objective.content_layers.items():
        local, picture = block.owned(objective.backbone.strides[name])
        target = targets.content[name]
        difference = features[name][..., local[0], local[1]].float() - target[..., picture[0], picture[1]]
        total = total + weight * difference.square().sum(dim=(1, 2, 3)) / target[0].numel()
    return total
