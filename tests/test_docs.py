"""Every ```python block of README.md and docs/ runs as written, in order, after the README's first command."""

import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import cli_main

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["README.md"] + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))


def python_blocks(page: str) -> list[str]:
  return re.findall(r"^```python\n(.*?)^```", (REPO / page).read_text(), re.S | re.M)


def test_the_readme_is_a_front_page():
  assert len((REPO / "README.md").read_text().splitlines()) <= 200
  assert python_blocks("README.md")  # the tour has code that runs


@pytest.fixture(scope="module")
def after_first_command(tmp_path_factory, data_dir):
  """A folder where the README's first command (`flaxzoo train brain_age_gm`) has run."""
  first = re.search(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S).group(1)
  assert first.endswith("flaxzoo train brain_age_gm")
  cwd = tmp_path_factory.mktemp("reader")
  result = cli_main("train", "brain_age_gm", "--workdir", cwd / "runs" / "brain_age_gm", "--data-dir", data_dir,
                    "--quiet")
  assert result.returncode == 0, result.stderr
  return cwd


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)])
def test_python_blocks_run_in_order(page, after_first_command, data_dir):
  code = "\n\n".join(python_blocks(page))
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=after_first_command, env={**os.environ, "TFDS_DATA_DIR": str(data_dir)})
  assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}"


def test_links_of_the_readme_exist():
  for link in re.findall(r"\]\(((?:docs/)[^)#]+)\)", (REPO / "README.md").read_text()):
    assert (REPO / link).is_file(), link
