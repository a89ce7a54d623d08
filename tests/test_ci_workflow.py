"""The GitHub workflow is valid and runs what the README tells a person to run.

Validated offline against the GitHub workflow schema that check-jsonschema ships
(requirements-dev.txt pins it; `.ci/run` installs it). The commands: the README's two first
commands (install and run the pipeline; the full test suite) are steps of the workflow, the
full test command is also `.ci/run`'s, and the fast tier's command is the full one with the
slow tests left out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
FULL_TESTS = "python -m pytest -q"
FAST_TESTS = 'python -m pytest -q -m "not slow"'

sys.path.insert(0, str(ROOT / "scripts"))
from plots_report import changed  # noqa: E402


def schema_check(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is absent (pip install -r requirements-dev.txt)")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, text=True
    )


def workflow_commands() -> list[str]:
    """Every shell line the workflow runs, comments and continuation lines aside."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    lines = []
    for job in jobs.values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                line = line.split(" #")[0].strip()
                if line and not line.startswith("#"):
                    lines.append(line)
    return lines


def readme_first_commands() -> list[str]:
    """The commands of the README's first code block, without their comments."""
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README has no code block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def test_workflow_is_valid_against_the_github_schema():
    result = schema_check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    """The check above can fail: a job without `runs-on` is not a workflow GitHub runs."""
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["test"]["runs-on"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert schema_check(path).returncode != 0


def test_readme_first_commands_are_what_ci_runs():
    first = readme_first_commands()
    assert first == ["pip install -r requirements.txt && dvc repro", FULL_TESTS], first
    assert set(first) <= set(workflow_commands()), workflow_commands()


def test_full_test_command_is_the_one_ci_and_ci_run_use():
    assert FULL_TESTS in workflow_commands()
    ci_run = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert FULL_TESTS in ci_run


def test_readme_and_contributing_give_both_tiers():
    for doc in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / doc).read_text()
        assert FAST_TESTS in text and FULL_TESTS in text, doc


def test_ci_checks_what_contributing_asks_for():
    """Lint, format and types in CI are the commands CONTRIBUTING.md gives."""
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for command in ("ruff check .", "ruff format --check .", "mypy"):
        assert command in workflow_commands() and command in contributing, command


def test_reproduce_job_fails_on_a_changed_baseline_and_comments_on_pull_requests():
    commands = workflow_commands()
    assert "python -m tests.machine --check" in commands
    assert "python -m tests.strict && git checkout -- params.yaml && dvc checkout" in commands
    assert "dvc metrics diff main --md >> report.md" in commands
    assert "cml comment create report.md" in commands
    uses = {
        step.get("uses", "").split("@")[0]
        for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["reproduce"]["steps"]
    }
    assert {"iterative/setup-cml", "iterative/setup-dvc"} <= uses


def test_pull_request_report_keeps_only_plots_whose_data_moved():
    row = {"step": "1", "loss": "0.5"}
    same = {"data": {"values": [{**row, "rev": "main"}, {**row, "rev": "workspace"}]}}
    moved = {"data": {"values": [{**row, "rev": "main"}, {**row, "loss": "0.4", "rev": "workspace"}]}}
    new = {"data": {"values": [{**row, "rev": "workspace"}]}}
    assert not changed(same) and changed(moved) and changed(new)
