"""The README's two set-up commands are the ones CI and users run."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return handle.read()


def _commands():
    return re.findall(r"^```\n(.+?)\n```", _read("README.md"), re.MULTILINE)


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(command for command in _commands() if "pytest" in command)
    assert test_command in _read(".ci", "run").splitlines()


def test_readme_run_command_starts_the_plugin_on_defaults():
    run_command = _commands()[0]
    assert run_command.endswith("twistd -n mailbox-appliance")
