"""README and docs/ against the code: every usage block lists exactly its parser's flags, every
`logreg` command they show names a real command and real flags, every `nox -s` a real session,
every relative link a file that exists; README stays short."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import commands, parser_flags

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def _fenced(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def _usage_blocks(command: str) -> list[tuple[str, str]]:
    """(page, block) of every usage block of `logreg COMMAND`: a fenced block that starts with the
    command and shows its options in brackets (not an example)."""
    return [
        (page.name, block)
        for page in PAGES
        for block in _fenced(page.read_text())
        if block.startswith(f"logreg {command} ") and "[--" in block.split("\n\n")[0]
    ]


@pytest.mark.parametrize(
    "command",
    ["train", "sweep", "worker", "samplers", "ui", "throughput", "compare", "convergence", "report",
     "server", "storage-proxy"],
)  # fmt: skip
def test_usage_blocks_list_exactly_the_parsers_flags(command):
    blocks = _usage_blocks(command)
    assert blocks, f"no usage block for logreg {command} in README or docs/"
    for page, block in blocks:
        first = block.split("\n\n")[0]
        assert set(FLAG.findall(first)) == parser_flags(command), f"{page}: logreg {command}"


def _command_lines():
    """(page, command, flags) of every `logreg ...` line in a fenced block or an inline code span."""
    for page in PAGES:
        text = page.read_text()
        for block in _fenced(text):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.removeprefix("$ ").split("#")[0]
                if line.startswith("logreg "):
                    yield page.name, line
        for span in re.findall(r"`(logreg [^`\n]+)`", text):
            yield page.name, span


def test_every_logreg_command_in_readme_and_docs_names_a_real_command_and_real_flags():
    known = set(commands())
    seen = 0
    for page, line in _command_lines():
        words = line.split()
        if len(words) < 2 or words[1].startswith("-"):  # `logreg --version`, `logreg --help`
            assert all(w in ("--version", "--help", "-h") for w in words[1:]), f"{page}: {line}"
            continue
        command = words[1]
        if not re.fullmatch(r"[a-z][a-z-]*", command):  # prose such as `logreg COMMAND --help`
            continue
        assert command in known, f"{page}: unknown command in {line!r}"
        unknown = set(FLAG.findall(line)) - parser_flags(command) - {"--help"}
        assert not unknown, f"{page}: {line!r} uses {sorted(unknown)}"
        seen += 1
    assert seen > 50  # the pages do show commands: the check ran over them


def _nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any("session" in ast.unparse(d) for d in node.decorator_list)
    }


def test_every_nox_session_named_in_readme_and_docs_exists():
    sessions = _nox_sessions()
    named = {name for page in PAGES for name in re.findall(r"nox -s ([a-z][a-z_-]*)", page.read_text())}
    assert {"sweep", "tests", "ui", "report"} <= named
    assert named <= sessions, sorted(named - sessions)
    # README lists the user's sessions in one line: each of them exists too.
    intro = "The nox sessions run them in the shared environment: "
    listed = re.search(re.escape(intro) + r"(.*?)\(", README.read_text(), re.S)
    assert set(re.findall(r"`([a-z]+)`", listed.group(1))) <= sessions


def test_every_relative_link_points_at_a_file():
    missing = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target) and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert missing == []


def test_readme_is_the_front_door_not_the_manual():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the long form to docs/"
    text = "\n".join(lines)
    for topic in ("cli", "experiments", "tracking", "speed", "scale", "results"):
        assert f"(docs/{topic}.md)" in text, topic
    # The quick start's two commands, and how to get `logreg` on the PATH.
    assert "nox -s sweep" in text and "nox -s tests" in text and "source .venv/bin/activate" in text
