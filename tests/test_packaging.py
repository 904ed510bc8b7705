"""The set-up contract: environment.yml mirrors pyproject, Makefile pins torch, CI runs make test."""

import re
import tomllib

import yaml

from conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_dependencies():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "tardiff"
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_reqs = {_name(r): r for r in pip_section if not r.startswith("-e")}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("book", "dev"):
        wanted += project["optional-dependencies"][extra]
    for req in wanted:
        name = _name(req)
        assert name in env_reqs, f"{name} is in pyproject.toml but not in environment.yml"
        if name != "torch":  # torch is pinned exactly in both set-ups (see the Makefile)
            assert env_reqs[name].replace(" ", "") == req.replace(" ", ""), f"{name} differs"
    assert env_reqs["torch"] == "torch==2.13.0"
    assert set(env_reqs) == {_name(r) for r in wanted}, "environment.yml lists packages pyproject does not"


def test_makefile_pins_torch_and_installs_extras():
    makefile = (REPO / "Makefile").read_text()
    assert "torch==2.13.0" in makefile
    assert '-e ".[book,dev]"' in makefile


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "make test" in (REPO / "README.md").read_text()
