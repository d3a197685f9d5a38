"""Block by block: a picture's whole objective and its exact gradient, in the memory of one block.

A Gram is a sum over positions, G = Σ_blocks F_b F_bᵀ / (C·H·W), and so is the content term. Galerne et al.
("Scaling Painting Style Transfer", EGSR 2024) evaluate the global objective that way: a first pass without
gradients adds up every style layer's Gram over the blocks; a second pass runs each block with gradients and
hands its features the gradient of the global loss, which, the global Grams known, depends on a block only
through its own features. The objective keeps its meaning (lit_nst.objective.objective); this is how it is evaluated.

Each block owns a partition of every layer's positions, the cells of its inner pixels, and backpropagates from
those alone, so the blocks' pixel gradients add up to the exact gradient. Its halo only has to make the owned
features exact: the deepest layer's reach (70 px for relu5_1), rounded up to that layer's stride so every
pooling grid lines up (80 px). Under DDP the ranks share the blocks, sum their Grams and then their gradients,
so every rank holds the whole picture's terms and gradient: N processes make the 1-process picture.
"""

import torch
from torch import Tensor, distributed
from torch.autograd.function import once_differentiable

from lit_nst.objective.backbone import VGGFeatures
from lit_nst.objective.blocks import Block, Share, block_geometry, block_windows
from lit_nst.objective.canvas import image_shape
from lit_nst.objective.losses import gram_sum, mean_squared_error, total_variation
from lit_nst.objective.objective import JobTargets, LossTerms, StyleObjective, StyleRegion


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
        # Pass 1, no gradients: the content term and every region's Grams, summed over the blocks.
        content = image.new_zeros(1, dtype=torch.float32)
        backbone, shape = objective.backbone, image_shape(image)
        sums = [{name: zeros_gram(backbone, name, image) for name in objective.style_layers} for _ in targets.regions]
        with torch.no_grad():
            for block in blocks:
                features = objective.features(block.read(image))
                content += content_sum(objective, features, targets, block)
                for region, region_sums in zip(targets.regions, sums, strict=True):
                    for name in objective.style_layers:
                        region_sums[name] += gram_sum(owned(objective, features, name, block, region.weights))
        content, sums = self._summed_over_ranks(content, sums)
        grams = [{name: total / positions(backbone, name, shape) for name, total in held.items()} for held in sums]
        style = sum(
            weight * mean_squared_error(region_grams[name], region.grams[name])
            for region, region_grams in zip(targets.regions, grams, strict=True)
            for name, weight in objective.style_layers.items()
        )
        if not wants_gradient:
            return content, style, None
        # Pass 2: each block backpropagates, from the positions it owns, d(total)/dG applied to its own F Fᵀ.
        pulls = [
            gram_pulls(objective, region, region_grams, shape)
            for region, region_grams in zip(targets.regions, grams, strict=True)
        ]
        gradients = torch.zeros_like(image)
        for block in blocks:
            window = block.read(image).detach().requires_grad_()
            with torch.enable_grad():
                features = objective.features(window)
                surrogate = objective.content_weight * content_sum(objective, features, targets, block)
                for region, region_pulls in zip(targets.regions, pulls, strict=True):
                    for name, pull in region_pulls.items():
                        block_gram = gram_sum(owned(objective, features, name, block, region.weights))
                        surrogate = surrogate + (pull * block_gram).sum()
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
        content, *grams = all_reduce_together(
            [content, *(gram for region_sums in sums for gram in region_sums.values())]
        )
        summed = iter(grams)
        return content, [{name: next(summed) for name in region_sums} for region_sums in sums]

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
    def grams(self, image: Tensor) -> dict[str, Tensor]:
        """As `StyleObjective.grams`, summed over the blocks (a painting at print size is as large as the picture)."""
        blocks = self.blocks(image_shape(image))
        if len(blocks) == 1:
            return self.objective.grams(image)
        backbone = self.objective.backbone
        sums = {name: zeros_gram(backbone, name, image) for name in self.objective.style_layers}
        for block in self._mine(blocks):
            features = self.objective.features(block.read(image))
            for name in sums:
                sums[name] += gram_sum(owned(self.objective, features, name, block, None))
        _, (sums,) = self._summed_over_ranks(image.new_zeros(1), [sums])
        return {name: total / positions(backbone, name, image_shape(image)) for name, total in sums.items()}

    def set_targets(self, contents: list[Tensor], styles: list) -> None:
        self.objective.set_targets(contents, styles, self.content_maps, self.grams)


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


def positions(backbone: VGGFeatures, name: str, shape: tuple[int, int]) -> int:
    """C·h_l·w_l of layer `name` over a picture of `shape`: a Gram's normaliser."""
    stride = backbone.strides[name]
    return backbone.channels[name] * (shape[0] // stride) * (shape[1] // stride)


def zeros_gram(backbone: VGGFeatures, name: str, like: Tensor) -> Tensor:
    channels = backbone.channels[name]
    return like.new_zeros(1, channels, channels, dtype=torch.float32)


def gram_pulls(
    objective: StyleObjective, region: StyleRegion, grams: dict[str, Tensor], shape: tuple[int, int]
) -> dict[str, Tensor]:
    """d(total)/d(F Fᵀ) for each style layer of a region, its global Grams known: what each block's owned F Fᵀ is
    pulled by. d/dG of style_weight · w · mean((G − T)²) is style_weight · w · 2 (G − T) / C²; the pull on a
    block's F Fᵀ sums (not averages) over positions, so the Gram's 1/N moves into it too."""
    pulls = {}
    for name, weight in objective.style_layers.items():
        gram, target = grams[name], region.grams[name]
        difference = objective.style_weight * weight * 2.0 * (gram - target)
        pulls[name] = difference / (gram.shape[-1] ** 2 * positions(objective.backbone, name, shape))
    return pulls


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


def owned(
    objective: StyleObjective, features: dict[str, Tensor], name: str, block: Block, weights: dict | None
) -> Tensor:
    """Layer `name`'s features at the positions `block` owns, weighted by a region's `weights` if it has them."""
    local, picture = block.owned(objective.backbone.strides[name])
    owned = features[name][..., local[0], local[1]]
    return owned if weights is None else owned * weights[name][..., picture[0], picture[1]]
