"""Where a picture's blocks lie: each block's inner pixels and the window it reads (inner and halo), and which of
a layer's positions it owns. The geometry of lit_nst.objective.tiling's walk, apart from the walk itself."""

from typing import NamedTuple

from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.objective.objective import StyleObjective


class Share(NamedTuple):
    """Which of the blocks this process evaluates: every `world`-th, from `rank`."""

    rank: int = 0
    world: int = 1


class Block(NamedTuple):
    inner: tuple[int, int, int, int]  # top, bottom, left, right: the pixels whose cells the block owns
    window: tuple[int, int, int, int]  # the pixels it reads: inner and halo, within the picture
    picture: tuple[int, int]  # the whole picture's (h, w)

    def read(self, image: Tensor) -> Tensor:
        top, bottom, left, right = self.window
        return image[..., top:bottom, left:right]

    def owned(self, stride: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """The positions of a layer of `stride` that this block owns: (in its own map, in the picture's map)."""
        (top, bottom, left, right), (window_top, _, window_left, _) = self.inner, self.window
        height, width = self.picture
        # The last block also owns the positions a floor division leaves past its last whole cell.
        rows = (top // stride, height // stride if bottom == height else bottom // stride)
        columns = (left // stride, width // stride if right == width else right // stride)
        rows_here, columns_here = window_top // stride, window_left // stride
        local = (
            slice(rows[0] - rows_here, rows[1] - rows_here),
            slice(columns[0] - columns_here, columns[1] - columns_here),
        )
        return local, (slice(*rows), slice(*columns))


def spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) pieces of at most `tile` pixels covering `length`, as even as `stride` allows."""
    pieces = -(-length // tile)
    # every piece but the last a whole number of the deepest layer's cells
    step = round_up(round_up(length, pieces) // pieces, stride)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


Box = tuple[int, int, int, int]  # top, bottom, left, right


def block_windows(shape: tuple[int, int], tile: int, stride: int, halo: int) -> list[tuple[Box, Box]]:
    """Each block's (inner, window) as (top, bottom, left, right): its pieces of the picture, and with the halo."""
    height, width = shape
    return [
        (
            (top, bottom, left, right),
            (max(top - halo, 0), min(bottom + halo, height), max(left - halo, 0), min(right + halo, width)),
        )
        for top, bottom in spans(height, tile, stride)
        for left, right in spans(width, tile, stride)
    ]


def block_geometry(objective: StyleObjective) -> tuple[int, int]:
    """(stride, halo) of blocks for the layers `objective` reads: blocks start on multiples of the deepest
    layer's stride, so every pooling grid lines up, and read its reach beyond, rounded up to that stride."""
    backbone = objective.backbone
    stride = max(backbone.strides.values())
    return stride, round_up(backbone.reach, stride)


def check_tile_size(tile_size: int | str, objective: StyleObjective) -> None:
    """A one-line UsageError unless `tile_size` is auto, 0 or a positive multiple of the blocks' stride."""
    if tile_size == "auto" or tile_size == 0:
        return
    if not objective.statistic.additive and not isinstance(tile_size, str):
        raise UsageError(
            f"--model.tile_size {tile_size}: --model.style_loss {objective.statistic.name} sorts all of a layer's "
            "positions, so it cannot be evaluated in blocks; drop --model.tile_size, or use gram, w2 or gram+meanstd"
        )
    stride, _ = block_geometry(objective)
    deepest = objective.backbone.taps[max(objective.backbone.taps)]
    # Typed `int | str` for the CLI, so that a word other than auto reaches this message, not the parser's.
    if not isinstance(tile_size, int) or tile_size < 0 or tile_size % stride:
        raise UsageError(
            f"--model.tile_size {tile_size} is not a block size: use auto, 0 (never tile) or a positive multiple "
            f"of {stride} px (the stride of {deepest}, the deepest layer used), e.g. 512"
        )


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
