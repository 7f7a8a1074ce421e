"""A hospital runs hospfed's ClientApp only: the FAB check, and the contract
with Flower's ``flwr-clientapp`` it hooks into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hospfed.client.appguard import (
    ALLOWED_CLIENTAPP,
    GUARD_DIR,
    RefusedAppError,
    check_fab,
)

PYPROJECT = """\
[project]
name = "x"
version = "1.0.0"

[tool.flwr.app]
publisher = "p"

[tool.flwr.app.components]
serverapp = "hospfed.server.app:app"
clientapp = "{clientapp}"
"""


def _fab(tmp_path: Path, clientapp: str, *files: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(clientapp=clientapp))
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("import os\n")
    return tmp_path


def test_hospfeds_own_app_is_accepted(tmp_path):
    check_fab(_fab(tmp_path, ALLOWED_CLIENTAPP, "README.md"))


@pytest.mark.parametrize(
    "clientapp", ["evil:app", "hospfed.client.app:make_client_app", "os:system", ""]
)
def test_another_clientapp_is_refused(tmp_path, clientapp):
    with pytest.raises(RefusedAppError, match="refused"):
        check_fab(_fab(tmp_path, clientapp))


@pytest.mark.parametrize("shipped", ["hospfed/client/app.py", "evil.py", "x/data.bin"])
def test_an_app_shipping_its_own_files_is_refused(tmp_path, shipped):
    """Even naming hospfed's ClientApp: a shipped hospfed/ could shadow it."""
    with pytest.raises(RefusedAppError, match="ships files"):
        check_fab(_fab(tmp_path, ALLOWED_CLIENTAPP, shipped))


def test_flwr_clientapp_loads_apps_through_the_guarded_loader():
    """Contract with Flower 1.42: installed before flwr-clientapp's imports,
    the guard is the loader its run_clientapp calls."""
    code = (
        "from hospfed.client.appguard import install; install();"
        "import flwr.supernode.runtime.run_clientapp as r;"
        "print(r.get_load_client_app_fn.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "guarded"
    source = Path(
        __import__("flwr.supernode.runtime.run_clientapp", fromlist=["x"]).__file__
    ).read_text()
    assert "from flwr.clientapp.utils import get_load_client_app_fn" in source
    assert "load_client_app_fn = get_load_client_app_fn(" in source


def test_the_sitecustomize_acts_only_in_flwr_clientapp(tmp_path):
    probe = (
        "import flwr.clientapp.utils as u, sys;"
        "print(getattr(u.get_load_client_app_fn, '__name__', ''))"
    )
    env = {"PYTHONPATH": str(GUARD_DIR), "PATH": ""}
    script = tmp_path / "flwr-clientapp"
    script.write_text(probe.replace(";", "\n"))
    as_clientapp = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert as_clientapp.stdout.strip() == "guarded"
    other = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert other.stdout.strip() == "get_load_client_app_fn"
