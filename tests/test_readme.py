"""README.md runs as pasted: every ```python block in a fresh interpreter (in an empty directory, so
the installed package is the one imported), and the shell blocks that .ci/run and users copy are there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 120  # seconds per block; the dask.distributed one starts a 2-process cluster


def fenced_blocks(text: str):
    """(language, first line number, code) of every fenced block."""
    blocks, lang, start, lines = [], None, 0, []
    for n, line in enumerate(text.splitlines(), 1):
        if lang is None:
            m = re.match(r"^```(\w*)\s*$", line)
            if m:
                lang, start, lines = m.group(1), n + 1, []
        elif line.rstrip() == "```":
            blocks.append((lang, start, "\n".join(lines) + "\n"))
            lang = None
        else:
            lines.append(line)
    assert lang is None, f"README.md: the block opened at line {start - 1} is never closed"
    return blocks


PYTHON = [(start, code) for lang, start, code in fenced_blocks(README.read_text()) if lang == "python"]


def test_readme_has_python_examples():
    assert len(PYTHON) >= 3


@pytest.mark.parametrize("start,code", PYTHON, ids=[f"line{start}" for start, _ in PYTHON])
def test_python_block_runs(start, code, tmp_path):
    script = tmp_path / f"readme_line{start}.py"
    script.write_text(code)
    try:
        r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                           timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"README.md block at line {start} ran past {TIMEOUT} s:\n{code}\nstderr:\n{e.stderr}")
    assert r.returncode == 0, f"README.md block at line {start} failed:\n{code}\nstderr:\n{r.stderr}"
    assert r.stdout.strip(), f"README.md block at line {start} printed nothing:\n{code}"


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
