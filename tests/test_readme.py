"""README.md and docs/porting.md run as pasted: every ```python block in a fresh interpreter (in an
empty directory, so the installed package is the one imported), and the shell blocks that .ci/run and
users copy are there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = (README, ROOT / "docs" / "porting.md")  # the pages whose python blocks are run
TIMEOUT = 120  # seconds per block; the dask.distributed one starts a 2-process cluster


def fenced_blocks(text: str, name: str = "README.md"):
    """(language, first line number, code) of every fenced block; a fence indented under a list
    item has that indent removed from its lines."""
    blocks, lang, start, lines, indent = [], None, 0, [], ""
    for n, line in enumerate(text.splitlines(), 1):
        if lang is None:
            m = re.match(r"^(\s*)```(\w*)\s*$", line)
            if m:
                indent, lang, start, lines = m.group(1), m.group(2), n + 1, []
        elif line.strip() == "```":
            blocks.append((lang, start, "\n".join(lines) + "\n"))
            lang = None
        else:
            lines.append(line[len(indent):] if line.startswith(indent) else line)
    assert lang is None, f"{name}: the block opened at line {start - 1} is never closed"
    return blocks


PYTHON = [(page.relative_to(ROOT).as_posix(), start, code) for page in DOCS
          for lang, start, code in fenced_blocks(page.read_text(), page.name) if lang == "python"]


def test_readme_has_python_examples():
    assert sum(page == "README.md" for page, _, _ in PYTHON) >= 3


def test_porting_page_has_every_route():
    """docs/porting.md shows the NumPy network and its three ports, each as runnable code."""
    code = "".join(c for page, _, c in PYTHON if page == "docs/porting.md")
    for needle in ("np.maximum(h, 0)", ".linear(X, p[\"W1\"].T", "relucore.layers import", "nn.Sequential(",
                   'use_backend("numpy")', "rc.gradcheck(", "relucore.reference"):
        assert needle in code, f"docs/porting.md has no runnable example with {needle!r}"


@pytest.mark.parametrize("page,start,code", PYTHON, ids=[f"{page}:line{start}" for page, start, _ in PYTHON])
def test_python_block_runs(page, start, code, tmp_path):
    script = tmp_path / f"block_line{start}.py"
    script.write_text(code)
    try:
        r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                           timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{page} block at line {start} ran past {TIMEOUT} s:\n{code}\nstderr:\n{e.stderr}")
    assert r.returncode == 0, f"{page} block at line {start} failed:\n{code}\nstderr:\n{r.stderr}"
    assert r.stdout.strip(), f"{page} block at line {start} printed nothing:\n{code}"


def marked_block(marker: str) -> str:
    """The command of the sh block that directly follows ``<!-- marker -->``."""
    text = README.read_text()
    m = re.search(rf"^<!-- {re.escape(marker)} -->\n```sh\n(.*?)^```$", text, re.M | re.S)
    assert m, f"README.md has no ```sh block right after <!-- {marker} -->"
    assert text.count(f"<!-- {marker} -->") == 1, f"<!-- {marker} --> appears more than once"
    return m.group(1).strip()


def test_ci_test_block():
    cmd = marked_block("ci:test")
    assert "pip install '.[test]'" in cmd and re.search(r"pytest tests benchmarks\b", cmd), cmd
    assert "ci:test" in (ROOT / ".ci" / "run").read_text(), ".ci/run no longer reads the ci:test block"


def test_ci_bench_block():
    cmd = marked_block("ci:bench")
    assert "pip install ." in cmd and "relucore-bench" in cmd, cmd


def test_readme_names_no_private_module():
    text = README.read_text()
    assert "_core" not in text, "README.md refers to relucore._core; use relucore.runtime"
