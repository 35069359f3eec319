"""The README keeps its promises: the two commands first, every environment variable documented."""
from pathlib import Path

from config.env import KNOWN_VARIABLES

REPO = Path(__file__).resolve().parents[2]


def test_readme_gives_the_two_commands_first():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make up" in first_block and "make test" in first_block


def test_every_environment_variable_the_settings_read_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in KNOWN_VARIABLES if f"`{name}`" not in readme]
    assert not missing, f"document these in README.md: {missing}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_settings_read_no_variable_that_is_not_listed():
    import re

    sources = "\n".join(path.read_text() for path in (REPO / "config").glob("*.py"))
    read = set(re.findall(r"""env\.get(?:_bool|_int|_list)?\(\s*["']([A-Z_]+)["']""", sources))
    read |= set(re.findall(r"""(?<![.\w])get(?:_bool|_int|_list)?\(\s*["']([A-Z_]+)["']""", sources))
    assert read, "the pattern found no variable: update this test"
    assert read <= set(KNOWN_VARIABLES), f"add to config.env.KNOWN_VARIABLES and the README: {read - set(KNOWN_VARIABLES)}"
