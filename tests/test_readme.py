"""Every `lit-nst` command in the README and docs/ runs as written, at a tiny size (a new user's first try); their
Python snippets compile, their links lead somewhere, and `make bench` rewrites only its own part of BENCHMARKS.md."""

import math
import re
import shlex
from pathlib import Path

import pytest
import yaml

from lit_nst.video.files import is_clip

from .helpers import REPO, config_scales, run_lit_nst, run_main, stretched_size

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]  # what a user reads, and copies from
LINKED_PAGES = [*PAGES, REPO / "BENCHMARKS.md"]  # ... and where their figures are


def blocks(page: Path, language: str) -> list[list[str]]:
    """The lines of each ```language block of a page."""
    found, current = [], None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            if current is None and line.strip() == f"```{language}":
                current = []
            elif current is not None:
                found.append(current)
                current = None
            continue
        if current is not None:
            current.append(line)
    return found


def page_commands(page: Path) -> list[str]:
    """The `.venv/bin/lit-nst ...` commands of a page's bash blocks, continuation lines joined."""
    commands, pending = [], ""
    for line in (line for block in blocks(page, "bash") for line in block):
        code = line.split("  #", 1)[0].rstrip()  # the pages' comments follow two or more spaces
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        text, pending = (pending + code).strip(), ""
        if text.startswith(".venv/bin/lit-nst "):
            commands.append(text)
    return commands


# The flags this test sets itself (a tiny size, few steps): commands that differ only in these, or in the name of
# the picture they write, paint alike at a tiny size and run once.
SET_HERE = ("--data.size", "--trainer.max_steps")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def what_it_does(command: str) -> list[str]:
    """A command less its size, steps and output file name; a video's suffix is kept (a clip is written otherwise)."""
    args, kept, index = shlex.split(command), [], 0
    while index < len(args):
        flag = args[index]
        if flag in SET_HERE:
            index += 2
        elif flag == "--output.path":
            suffix = Path(args[index + 1]).suffix.lower()
            kept += [flag, "picture" if suffix in PICTURE_SUFFIXES else suffix]
            index += 2
        else:
            kept.append(flag)
            index += 1
    return kept


def distinct_commands() -> list[tuple[str, str]]:
    """(page:index, command) for every command of the pages, less those that do what an earlier one does."""
    commands, seen = [], []
    for page in PAGES:
        for index, command in enumerate(page_commands(page)):
            if what_it_does(command) not in seen:
                seen.append(what_it_does(command))
                commands.append((f"{page.stem}-{index}", command))
    return commands


COMMANDS = distinct_commands()
TINY = ["--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"]
CLIP_TINY = [
    "--data.scales",
    "[32]",
    "--data.steps",
    "[2]",
    "--data.frame_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
]


def tiny_size(args: list[str], cwd: Path) -> list[str]:
    """32 px, or larger where a small style scale would shrink the painting under 16 px; a schedule (a config's or
    the command's) stretched to start there."""
    scale = float(args[args.index("--data.style_scale") + 1]) if "--data.style_scale" in args else 1.0
    size = max(32, math.ceil(32 / scale))
    scales = yaml.safe_load(args[args.index("--data.scales") + 1]) if "--data.scales" in args else None
    if scales is None and "--config" in args:
        scales = config_scales(cwd / args[args.index("--config") + 1])
    return ["--data.size", str(stretched_size(size, scales))]


def test_the_readme_and_docs_have_commands_to_try():
    assert len(page_commands(REPO / "README.md")) >= 4
    assert {name.split("-")[0] for name, _ in COMMANDS} - {"README"}, "no command of docs/ beyond the README's"


def test_commands_that_paint_alike_are_run_once():
    a = ".venv/bin/lit-nst fit --data.content a.jpg --data.style b.jpg --data.size 384 --output.path x.jpg"
    b = ".venv/bin/lit-nst fit --data.content a.jpg --data.style b.jpg --output.path y.png --trainer.max_steps 9"
    assert what_it_does(a) == what_it_does(b)
    assert what_it_does(a) != what_it_does(b.replace("y.png", "y.mp4"))
    assert what_it_does(a) != what_it_does(a + " --model.color luminance")


def marked(command: str):
    """A command that starts several processes runs as the user's would; the others in this process."""
    return pytest.param(command, marks=pytest.mark.slow) if "--trainer.devices" in command else command


@pytest.mark.parametrize("command", [marked(c) for _, c in COMMANDS], ids=[name for name, _ in COMMANDS])
def test_documented_command_runs_as_written(tmp_path, capfd, monkeypatch, command):
    args = shlex.split(command)[1:]
    several_processes = "--trainer.devices" in args
    if several_processes:
        args += ["--trainer.accelerator", "cpu"]  # CI has no GPU; the same processes run on the CPU
    # Relative paths (assets/, configs/) as a user in the checkout would have them.
    for link in ("assets", "configs"):
        (tmp_path / link).symlink_to(REPO / link)
    # A clip is written once its last frame is painted: a few steps for every frame, not 2 in all.
    tiny = CLIP_TINY if is_clip(REPO / args[args.index("--data.content") + 1]) else TINY
    args += [*tiny_size(args, tmp_path), *tiny]
    if several_processes:
        result = run_lit_nst(*args, cwd=tmp_path, timeout=300)
    else:
        monkeypatch.chdir(tmp_path)
        result = run_main(capfd, *args)
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    assert named_outputs(args, tmp_path), f"{command}: no image where it says"
    for image in named_outputs(args, tmp_path):
        assert image.is_file(), f"{command}: {image} was not written"


def named_outputs(args: list[str], root: Path) -> list[Path]:
    """The images the command says it writes: its --output.path, or a file per job in its --output.dir."""
    if "--output.path" in args:
        return [root / args[args.index("--output.path") + 1]]
    folder = root / args[args.index("--output.dir") + 1]
    contents, styles = (listed(args[args.index(flag) + 1]) for flag in ("--data.content", "--data.style"))
    return [folder / f"{Path(c).stem}__{Path(s).stem}.png" for c in contents for s in styles]


def listed(value: str) -> list[str]:
    return value.strip("[]").split(",")


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_python_snippets_compile(page):
    for block in blocks(page, "python"):
        compile("\n".join(block), str(page), "exec")


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    """The targets of a page's Markdown links and images, outside its code blocks and code spans."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def leads_somewhere(page: Path, link: str) -> bool:
    """Whether a relative link of `page` names a file that exists, and a heading of it where it names one."""
    path, _, anchor = link.partition("#")
    target = (page.parent / path).resolve() if path else page
    if not target.exists():
        return False
    return not anchor or target.suffix != ".md" or anchor in anchors(target)


@pytest.mark.parametrize("page", LINKED_PAGES, ids=[page.stem for page in LINKED_PAGES])
def test_relative_links_lead_to_files_and_headings_that_exist(page):
    relative = [link for link in links(page) if not re.match(r"[a-z]+:", link)]  # not https: or mailto:
    assert relative or page.name == "BENCHMARKS.md", f"{page.name} links nowhere"
    broken = [link for link in relative if not leads_somewhere(page, link)]
    assert not broken, f"{page.name}: {broken}"


def test_the_files_map_names_every_module_and_only_modules_that_exist():
    """docs/development.md's map of the package: no module missing, none that is gone."""
    text = (REPO / "docs" / "development.md").read_text()
    named = set(re.findall(r"`([\w/]+\.(?:py|yaml))`", text))
    package = REPO / "lit_nst"
    modules = [path for path in package.rglob("*.py") if path.parent == package or path.name != "__init__.py"]
    missing = [
        str(path.relative_to(REPO))
        for path in modules
        if str(path.relative_to(REPO)) not in named and (path.parent == package or path.name not in named)
    ]
    assert not missing, f"docs/development.md does not name {missing}"
    gone = [name for name in named if name.startswith("lit_nst/") and not (REPO / name).exists()]
    assert not gone, f"docs/development.md names {gone}, which do not exist"


def test_benchmarks_md_has_each_generated_part_marked_once_opened_and_closed():
    lines = (REPO / "BENCHMARKS.md").read_text().splitlines()
    opening = [line for line in lines if line.startswith("<!-- generated: ")]
    titles = [line.removeprefix("<!-- generated: ").removesuffix(" -->") for line in opening]
    assert "CPU" in titles, "make bench's CPU table is not marked"
    for title in titles:
        opened, closed = f"<!-- generated: {title} -->", f"<!-- /generated: {title} -->"
        assert lines.count(opened) == 1 and lines.count(closed) == 1, title
        assert lines.index(opened) < lines.index(closed), title


def test_a_benchmark_rewrites_only_what_lies_between_its_markers(tmp_path):
    from benchmarks.bench import write_section

    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\nBy hand.\n\n## CPU\n\nA note by hand.\n\n<!-- generated: CPU -->\nold table\n"
        "<!-- /generated: CPU -->\n\nMore by hand.\n\n## Video\n\nBy hand too.\n\n## Demo\n\nThe last, by hand.\n"
    )
    write_section(path, "CPU", "new table")
    text = path.read_text()
    assert "old table" not in text and "new table" in text
    for kept in ("By hand.\n", "A note by hand.\n", "\nMore by hand.\n", "## Video\n\nBy hand too.\n"):
        assert kept in text
    assert text.index("A note by hand.") < text.index("new table") < text.index("More by hand.")
    assert "at commit" in text[text.index("<!-- generated: CPU -->") : text.index("new table")]

    write_section(path, "Video", "a video table")  # a section without markers: its marked part goes at its end
    text = path.read_text()
    assert text.index("By hand too.") < text.index("<!-- generated: Video -->") < text.index("a video table")
    assert text.index("<!-- /generated: Video -->") < text.index("## Demo")

    write_section(path, "GPU", "a GPU table")  # no GPU section: one is added at the end, marked
    text = path.read_text()
    assert text.index("The last, by hand.") < text.index("## GPU") < text.index("<!-- generated: GPU -->")
    assert text.index("a GPU table") < text.index("<!-- /generated: GPU -->")
    assert text.count("## ") == 4 and "new table" in text and "a video table" in text
