"""The example systemd units start the commands with flags the commands take."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "deploy"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("unit", ["hospfed-server.service", "hospfed-client.service"])
def test_a_unit_starts_its_command_with_flags_it_takes(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(UNITS / unit)
    service = parser["Service"]
    argv = shlex.split(service["ExecStart"])
    program, command = Path(argv[0]).name, argv[1]
    assert (program, command) in {
        ("hospfed-server", "start"),
        ("hospfed-client", "start"),
    }
    shown = subprocess.run(
        [str(BIN / program), command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    for flag in (a for a in argv[2:] if a.startswith("--")):
        assert flag in shown, f"{unit}: {program} {command} has no {flag}"
    assert service["SuccessExitStatus"] == "143"  # SIGTERM is a clean stop
    assert service["UMask"] == "0077"
