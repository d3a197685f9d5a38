"""Clips: frames painted one after another along the optical flow, chunks, resume, DDP, files in and out."""

import math
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.camera import camera_move
from lit_nst.cli import StyleTransferCLI
from lit_nst.clip_stages import ClipStages
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.images import image_to_tensor, load_image
from lit_nst.video.clips import ChunkPlan
from lit_nst.video.files import is_clip, read_frames, write_clip
from lit_nst.video.flow import frame_flows, optical_flow, reliable, warp, warping_error

from .helpers import bundled, ddp, fit, painting, photo, run_checkpoint, run_lit_nst, run_main

STYLE = ["--data.style", painting("starry_night")]
# A 48-px clip: the first frame coarse to fine, then a few steps a frame.
SHORT = ["--data.size", "48", "--data.scales", "[32,48]", "--data.steps", "[6,6]", "--data.frame_steps", "4"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Six frames of a camera panning right and zooming in over chelsea: known, smooth motion."""
    return camera_move(bundled("chelsea"), tmp_path_factory.mktemp("clip") / "frames", 6, 48, pan=1.0, zoom=1.01)


def frames_in(folder: Path) -> list[torch.Tensor]:
    return [image_to_tensor(load_image(path, "frame")) for path in sorted(folder.glob("*.png"))]


def decoded(path: Path) -> tuple[list[torch.Tensor], Fraction, bool]:
    images, rate, audio = read_frames(path)
    return [image_to_tensor(image) for image in images], rate, audio


@pytest.mark.parametrize(("frames", "chunks", "overlap"), [(10, 1, 4), (10, 3, 2), (64, 2, 4), (5, 2, 2), (9, 2, 0)])
def test_chunks_cover_the_clip_and_cross_fade_over_their_overlap(frames, chunks, overlap):
    plan = ChunkPlan(frames, chunks, overlap)
    spans, painted = plan.spans(), plan.painted()
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(end == next_first for (_, end), (next_first, _) in zip(spans, spans[1:], strict=False))
    lengths = [end - first for first, end in painted]
    assert max(lengths) - min(lengths) <= 1 and plan.stages == max(lengths)
    for index in range(1, chunks):  # each later chunk starts `overlap` frames inside the one before
        assert painted[index - 1][1] - painted[index][0] == overlap
        # and fades in by equal steps over them: 1/3, 2/3 over two frames
        for step, frame in enumerate(range(painted[index][0], painted[index - 1][1]), 1):
            assert dict(plan.sources(frame))[index] == pytest.approx(step / (overlap + 1))
    for frame in range(frames):
        sources = plan.sources(frame)
        assert sum(weight for _, weight in sources) == pytest.approx(1.0)
        for chunk, _ in sources:
            assert painted[chunk][0] <= frame < painted[chunk][1]
    for chunk, (first, end) in enumerate(painted):  # every frame a chunk paints is seen in the clip
        assert all(any(c == chunk and w > 0 for c, w in plan.sources(frame)) for frame in range(first, end))
    # A chunk that is done repeats its last frame and paints nothing new.
    for chunk, (first, end) in enumerate(painted):
        assert [plan.frame(chunk, stage) for stage in range(plan.stages)][: end - first] == list(range(first, end))
        assert not plan.paints(chunk, end - first)


def test_flow_of_a_pan_is_the_pan_and_reliable_warps_match(clip):
    first, second = frames_in(clip)[:2]
    backward = optical_flow(second, first)  # frame 1 -> frame 0: the camera moved right, so +x
    inner = backward[:, 6:-6, 6:-6]
    assert inner[0].mean().item() == pytest.approx(1.0 + 0.24, abs=0.3)  # the pan, plus the zoom's drift
    mask = reliable(backward, optical_flow(first, second))
    assert mask.mean() > 0.9
    warped = warp(first, backward)
    assert (warped - second)[:, 6:-6, 6:-6].abs().mean() < 0.4 * (first - second)[:, 6:-6, 6:-6].abs().mean()


def test_what_a_moving_square_uncovers_is_found_unreliable():
    background = image_to_tensor(load_image(bundled("chelsea"), "photo").resize((96, 64)))

    def frame(left: int) -> torch.Tensor:
        image = background.clone()
        image[:, 20:44, left : left + 24] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
        return image

    before, after = frame(30), frame(36)  # the square moves 6 px right
    mask = reliable(optical_flow(after, before), optical_flow(before, after))[0]
    assert mask[22:42, 30:36].mean() < 0.3  # background the square covered in the frame before
    assert mask[:, :20].mean() > 0.9 and mask[50:].mean() > 0.9  # background far from it


@pytest.mark.slow
def test_a_clip_becomes_a_video_with_its_frames_and_rate_and_less_flicker_than_frames_alone(tmp_path, clip):
    out = tmp_path / "painted.mp4"
    cli = fit(tmp_path / "clip", "--data.content", clip, *STYLE, *SHORT, "--output.path", out)
    assert cli.trainer.global_step == 6 + 6 + 5 * 4
    painted, rate, audio = decoded(out)
    inputs = frames_in(clip)
    assert len(painted) == 6 and rate == 24 and not audio
    assert painted[0].shape == inputs[0].shape
    kept = frames_in(run_checkpoint(tmp_path / "clip").parent / "video" / "frames")
    assert len(kept) == 6
    # H.264 keeps the painted frames (its 4:2:0 chroma blurs a 48-px frame's strokes a little).
    assert (painted[3] - kept[3]).abs().mean() < min(10 / 255, (kept[3] - inputs[3]).abs().mean() / 3)
    # Each frame painted on its own, as stills: the same steps as the clip's first frame.
    alone = tmp_path / "alone"
    paths = sorted(str(path) for path in clip.glob("*.png"))
    fit(alone, "--data.content", f"[{','.join(paths)}]", *STYLE, *SHORT[:6], "--output.dir", alone / "out")
    independent = frames_in(alone / "out")
    flows = frame_flows(inputs)
    assert warping_error(kept, inputs, flows) < warping_error(independent, inputs, flows) / 3


CHUNKED = [*STYLE, *SHORT, "--data.chunks", "2", "--data.overlap", "1"]


@pytest.fixture(scope="module")
def chunked(tmp_path_factory, clip) -> StyleTransferCLI:
    """The clip painted straight in two chunks in one process, for the resumed runs to equal.
    Chunk 0 paints frames 0-3, chunk 1 frames 3-5 (repeating its last while chunk 0 paints on), cross-fading over 3."""
    folder = tmp_path_factory.mktemp("chunked")
    return fit(folder, "--data.content", clip, *CHUNKED, "--output.dir", folder / "out")


@pytest.mark.slow
@pytest.mark.parametrize("cut", [5, 4], ids=["mid-frame", "at a frame's end"])
def test_a_resumed_clip_ends_as_a_straight_one_without_painting_a_frame_twice(tmp_path, clip, chunked, cut, capsys):
    flags = ["--data.content", clip, *CHUNKED]
    total = chunked.trainer.global_step
    folder = tmp_path / "cut"
    fit(folder, *flags, "--output.dir", folder / "out", "--trainer.max_steps", str(total - cut))
    assert not (folder / "out").exists() or not list((folder / "out").glob("*.png"))  # a clip is written whole
    frames = run_checkpoint(folder).parent / "video" / "frames"  # the run's own: another clip's are elsewhere
    done = {path.name: path.stat().st_mtime_ns for path in frames.glob("*.png")}
    # Cut at step 19 (5), frames 0 and 1 of chunk 0 and 3 and 4 of chunk 1 are done, so frames 0, 1 and 4; at step
    # 20 (4), 0-2 and 4-5. Frame 3 waits for chunk 0.
    finished = {5: 3, 4: 5}[cut]
    assert f"{finished} frames of the clip's 6 painted so far" in capsys.readouterr().err
    resumed = fit(folder, *flags, "--output.dir", folder / "out", "--ckpt_path", "last")
    assert resumed.trainer.global_step == total
    # A clip's stages after the first frame are its frames: the line says which.
    frame = resumed.datamodule.schedule.stage_at(total - cut) - len(resumed.datamodule.schedule.scales) + 2
    where = f"resuming at step {total - cut} of {total}, frame {frame} of 4 in each of 2 chunks"
    assert where in capsys.readouterr().err
    again = {path.name: path.stat().st_mtime_ns for path in frames.glob("*.png")}
    # The frames in progress at the cut were written then (nothing lost), and painted on after the resume.
    data = chunked.datamodule
    stage = data.schedule.stage_at(total - cut - 1)
    in_progress = {f"chunk{chunk}_{frame:05d}.png" for chunk, frame in enumerate(data.frames_at(stage))}
    assert in_progress <= set(done) and len(done) > len(in_progress)
    assert all(again[name] == done[name] for name in set(done) - in_progress)
    straight = Path(chunked.trainer.default_root_dir) / "out"
    for a, b in zip(frames_in(straight), frames_in(folder / "out"), strict=True):
        assert (a - b).abs().max() <= 2 / 255


@pytest.mark.slow
def test_two_processes_paint_the_chunks_of_one_process(tmp_path, clip):
    # Two frames of cross-fade (chunk 0 frames 0-3, chunk 1 frames 2-5): unequal weights, on two ranks.
    flags = ["--data.content", clip, *STYLE, *SHORT, "--data.chunks", "2", "--data.overlap", "2"]
    one = tmp_path / "one"
    fit(one, *flags, "--output.dir", one / "out")
    two = tmp_path / "two"
    result = run_lit_nst(
        "fit",
        *flags,
        *ddp(2),
        "--trainer.default_root_dir",
        two,
        "--output.dir",
        two / "out",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr
    ones, twos = frames_in(one / "out"), frames_in(two / "out")
    assert len(ones) == len(twos) == 6
    for a, b in zip(ones, twos, strict=True):
        assert (a - b).abs().max() <= 2 / 255


@pytest.mark.slow
def test_controls_work_on_a_clip_blend_luminance_content_mask_and_blocks(tmp_path, clip):
    mask = tmp_path / "left.png"
    Image.fromarray(np.concatenate([np.full((32, 24), 255, np.uint8), np.zeros((32, 24), np.uint8)], 1)).save(mask)
    out = tmp_path / "out.gif"
    styles = f"[{painting('starry_night')},{painting('the_scream')}]"
    cli = fit(
        tmp_path,
        "--data.content",
        clip,
        "--data.style",
        styles,
        "--data.style_blend",
        "[0.7,0.3]",
        "--model.color",
        "luminance",
        "--data.content_mask",
        mask,
        "--model.tile_size",
        "16",
        *SHORT,
        "--output.path",
        out,
    )
    assert cli.model.evaluation.block_walk is not None
    painted, _, _ = decoded(out)
    inputs = frames_in(clip)
    assert len(painted) == 6
    # The black half of the mask keeps the photo, in every frame.
    right = (painted[4] - inputs[4])[:, :, 30:].abs().mean()
    left = (painted[4] - inputs[4])[:, :, :18].abs().mean()
    assert left > 2 * right, (left, right)  # (the GIF's palette changes every pixel a little)


@pytest.mark.slow
@pytest.mark.parametrize("fps", [None, "29.97"], ids=["its own rate", "the rate given as 29.97"])
def test_the_audio_of_a_clip_is_copied(tmp_path, clip, fps):
    source = tmp_path / "with_sound.mp4"
    ntsc = Fraction(30000, 1001)  # what "29.97 fps" is
    write_clip(frames_in(clip), source, ntsc)
    with_audio = tmp_path / "source.mp4"
    add_tone(source, with_audio)
    out = tmp_path / "out.mp4"
    fit(
        tmp_path / "run",
        "--data.content",
        with_audio,
        *STYLE,
        *SHORT,
        "--output.path",
        out,
        *(["--output.fps", fps] if fps else []),
    )
    painted, rate, audio = decoded(out)
    assert len(painted) == 6 and rate == ntsc and audio
    assert audio_packets(out) == audio_packets(with_audio) > 40  # the whole second of sound (1024 samples a packet)


def audio_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        return sum(packet.size > 0 for packet in container.demux(container.streams.audio[0]))


def test_a_missing_h264_encoder_is_refused_before_any_work(tmp_path, clip, monkeypatch):
    def codec(name, mode="r"):
        raise av.codec.codec.UnknownCodecError(name)

    monkeypatch.setattr(av.codec, "Codec", codec)
    with pytest.raises(UsageError, match=re.escape("cannot write out.mp4: this PyAV's FFmpeg has no H.264 encoder")):
        fit(tmp_path, "--data.content", clip, *STYLE, *SHORT, "--output.path", tmp_path / "out.mp4")
    with pytest.raises(UsageError, match="no H.264 encoder"):  # the default result, stylized.mp4, too
        fit(tmp_path, "--data.content", clip, *STYLE, *SHORT)
    assert not list(tmp_path.rglob("*.mp4"))


def test_frames_of_a_longer_clip_in_the_output_folder_are_refused(tmp_path, clip):
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (48, 32)).save(out / "00007.png")
    with pytest.raises(UsageError, match=re.escape(f"--output.dir {out} holds frames past this clip's 6 (00007.png")):
        fit(tmp_path / "run", "--data.content", clip, *STYLE, *SHORT, "--output.dir", out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags",
    [
        ["--data.style", "[STARRY,SCREAM]", "--data.style_masks", "[LEFT,RIGHT]", "--model.color", "match"],
        ["--trainer.precision", "bf16-mixed"],
    ],
    ids=["regions with still masks, colours matched", "bf16-mixed"],
)
def test_regions_colour_matching_and_bf16_work_on_a_clip(tmp_path, clip, flags):
    left = tmp_path / "left.png"
    Image.fromarray(np.concatenate([np.full((32, 24), 255, np.uint8), np.zeros((32, 24), np.uint8)], 1)).save(left)
    right = tmp_path / "right.png"
    Image.fromarray(255 - np.asarray(Image.open(left))).save(right)
    names = {"STARRY": painting("starry_night"), "SCREAM": painting("the_scream"), "LEFT": left, "RIGHT": right}
    flags = [re.sub("|".join(names), lambda found: str(names[found[0]]), flag) for flag in flags]
    # Short: bfloat16 is slow on a CPU without it; every frame still goes through the temporal steps.
    short = ["--data.size", "48", "--data.scales", "[48]", "--data.steps", "[3]", "--data.frame_steps", "2"]
    cli = fit(tmp_path / "run", "--data.content", clip, *STYLE, *short, *flags, "--output.dir", tmp_path / "out")
    assert cli.trainer.global_step == 3 + 5 * 2
    painted, inputs = frames_in(tmp_path / "out"), frames_in(clip)
    assert len(painted) == 6 and all(torch.isfinite(frame).all() for frame in painted)
    assert all((a - b).abs().mean() > 2 / 255 for a, b in zip(painted, inputs, strict=True))  # painted, every one
    flows = frame_flows(inputs)
    # Steady: 3-5x the photo clip's own warping error here; frames painted alone are over 100x it (BENCHMARKS.md).
    assert warping_error(painted, inputs, flows) < 10 * warping_error(inputs, inputs, flows)


def add_tone(video: Path, out: Path) -> None:
    """`video` with a second of a 440 Hz tone."""
    with av.open(str(video)) as source, av.open(str(out), "w") as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        sound = output.add_stream("aac", rate=44100)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                output.mux(packet)
        samples = (np.sin(2 * math.pi * 440 * np.arange(44100) / 44100) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*sound.encode(frame), *sound.encode()]:
            output.mux(packet)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.mkdir(), "has no frames"),
        (lambda path: (path.mkdir(), Image.new("RGB", (40, 30)).save(path / "0.png")), "has one frame"),
        (lambda path: path.with_suffix(".mp4").write_bytes(b"not a video" * 100), "cannot be decoded"),
    ],
)
def test_a_bad_clip_is_one_line(tmp_path, make, message, capfd):
    path = tmp_path / "clip"
    make(path)
    target = path.with_suffix(".mp4") if message == "cannot be decoded" else path
    result = run_main(capfd, "fit", "--data.content", target, *STYLE, "--trainer.default_root_dir", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lit-nst: error: content clip") and message in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--output.panel", "true"], "--output.panel and --output.every_n_steps are for pictures"),
        (["--data.chunks", "9"], "--data.chunks 9 is more than the clip's 6 frames"),
        (["--data.chunks", "2", "--data.overlap", "5"], "is longer than a chunk's own part"),
        (["--data.chunks", "2", "--data.overlap", "8"], "is longer than a chunk's own part"),
        (["--data.chunks", "3", "--data.overlap", "3"], "is longer than a chunk's own part"),
        (["--model.temporal_weight", "-1"], "--model.temporal_weight must be 0 (none) or positive"),
        (["--output.path", "out.webm"], "cannot write a clip as out.webm"),
        (["--data.style", f"[{painting('starry_night')},{painting('the_scream')}]"], "a clip is painted in one style"),
        (["--data.content", f"[{photo('chelsea')},CLIP]"], "a clip is painted on its own"),
    ],
)
def test_clip_settings_that_cannot_work_are_refused(tmp_path, clip, flags, message):
    flags = [flag.replace("CLIP", str(clip)) for flag in flags]
    with pytest.raises(UsageError, match=re.escape(message)):
        fit(tmp_path, "--data.content", clip, *STYLE, *SHORT, *flags)


def test_a_schedule_too_small_for_the_frames_is_one_line_before_any_work(tmp_path, clip, capfd):
    out = tmp_path / "out.gif"
    result = run_main(
        capfd,
        "fit",
        "--data.content",
        clip,
        *STYLE,
        "--data.style_scale",
        "4",
        "--data.scales",
        "[8,48]",
        "--data.steps",
        "[1,1]",
        "--data.frame_steps",
        "1",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.path",
        out,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"the frames of {clip} would be 8x5 px at 8 px" in line and line.endswith("raise --data.scales"), line
    assert not out.exists() and not (tmp_path / "lightning_logs").exists()


def test_a_video_file_name_for_a_picture_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a video file, and the content a picture"):
        fit(tmp_path, "--data.content", photo("chelsea"), *STYLE, "--data.size", "32", "--output.path", "out.mp4")


def test_stylize_gives_a_clips_painted_frames(clip, capfd):
    import lit_nst

    with pytest.raises(UsageError, match="max_steps 5 stops the clip before its last frame"):
        lit_nst.stylize(clip, painting("starry_night"), size=48, scales=[48], steps=[3], frame_steps=2, max_steps=5)
    capfd.readouterr()
    frames = lit_nst.stylize(clip, painting("starry_night"), size=48, scales=[32, 48], steps=[6, 6], frame_steps=4)
    assert len(frames) == 6 and all(isinstance(frame, Image.Image) for frame in frames)
    assert frames[0].size == Image.open(sorted(clip.glob("*.png"))[0]).size
    assert "wrote" not in capfd.readouterr().err  # the call returns the frames; its temporary video is gone


def test_a_clip_run_ends_with_a_line_naming_its_frames(tmp_path, clip, capfd):
    tiny = ["--data.size", "32", "--data.scales", "[32]", "--data.steps", "[2]", "--data.frame_steps", "1"]
    out = tmp_path / "out"
    flags = ["--trainer.default_root_dir", tmp_path, "--trainer.enable_progress_bar", "false", "--output.dir", out]
    result = run_main(capfd, "fit", "--data.content", clip, *STYLE, *tiny, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"lit-nst: wrote the clip's 6 frames in {out}"
    assert len(list(out.glob("*.png"))) == 6


def test_a_still_gif_is_a_picture_and_an_animated_one_a_clip(tmp_path):
    still, animated = tmp_path / "still.gif", tmp_path / "animated.gif"
    Image.new("RGB", (40, 30), "red").save(still)
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    assert not is_clip(still) and is_clip(animated)


def test_frames_are_taken_in_the_order_their_numbers_say(tmp_path):
    for number, grey in ((10, 30), (2, 20), (1, 10)):
        Image.new("RGB", (40, 30), (grey, grey, grey)).save(tmp_path / f"{number}.png")
    frames, rate, audio = read_frames(tmp_path)
    assert [frame.getpixel((0, 0))[0] for frame in frames] == [10, 20, 30] and rate is None and not audio


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--data.chunks", "2"], "--data.chunks apply to a clip"),
        (["--output.fps", "6"], "--output.fps applies to a clip"),
    ],
)
def test_clip_settings_on_a_picture_are_refused(tmp_path, flags, message):
    with pytest.raises(UsageError, match=message):
        fit(tmp_path, "--data.content", photo("chelsea"), *STYLE, "--data.size", "32", *flags)


def test_a_damaged_flow_cache_is_computed_again(tmp_path, clip):
    from lit_nst.video.clips import Clip

    painted = Clip(clip, 48, 1, 4)
    painted.load_flows(tmp_path, write=True)
    (cache,) = tmp_path.glob("flow-*.pt")
    cache.write_bytes(cache.read_bytes()[:500])
    again = Clip(clip, 48, 1, 4)
    again.load_flows(tmp_path, write=True)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(painted.flows, again.flows, strict=True))
    assert len(torch.load(cache, weights_only=True)) == 5


def test_a_clip_builds_each_stages_jobs_once_during_the_run(clip, monkeypatch):
    built = []
    original = ClipStages._new_jobs
    monkeypatch.setattr(ClipStages, "_new_jobs", lambda self, stage: built.append(stage) or original(self, stage))
    images = StyleImages(str(clip), painting("starry_night"), size=48, scales=[32, 48], steps=[6, 6], frame_steps=4)
    stages = len(images.schedule.steps)
    # At construction: the last stage (the jobs' names) and the first (checked, and kept for step 0).
    assert built == [stages - 1, 0]
    for step in range(images.schedule.total):  # the module and callbacks ask at every step
        images.jobs_at_stage(images.schedule.stage_at(step))
    assert built == [stages - 1, *range(stages)]
