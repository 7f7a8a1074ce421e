"""The hospital process's parts, without processes: the node key in the
formats Flower reads, the node config as Flower parses it, and the checks
``hospfed-client start`` makes before anything connects."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.common.config import parse_config_args

from hospfed.client.data import NodeSettings
from hospfed.client.node import NodeOptions, node_config, supernode_argv
from hospfed.client.nodekey import make_node_key
from hospfed.client.privacy import PrivacySettings
from hospfed.common.errors import ConfigError, KeyFileError

BIN = Path(sys.executable).parent


def test_the_node_key_is_what_flowers_supernode_and_register_read(tmp_path):
    private, public = make_node_key(tmp_path / "node", "Cleveland Clinic")
    # flower-supernode: load_ssh_private_key, must be EC
    key = serialization.load_ssh_private_key(private.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # flwr supernode register: load_ssh_public_key, a NIST curve
    pub = serialization.load_ssh_public_key(public.read_bytes())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pub.curve.name == "secp384r1"
    assert pub.public_numbers() == key.public_key().public_numbers()
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert public.read_text().rstrip().endswith("Cleveland Clinic")


def test_a_node_key_is_never_replaced(tmp_path):
    private, _ = make_node_key(tmp_path)
    before = private.read_bytes()
    with pytest.raises(ConfigError, match="never replaced"):
        make_node_key(tmp_path)
    assert private.read_bytes() == before


def _settings(tmp_path: Path, **privacy: float) -> NodeSettings:
    return NodeSettings(
        hospital="zürich",
        data=tmp_path / "my data" / "site.hfd",
        key_file=tmp_path / "keys" / "site.key",
        backend="torch",
        privacy=PrivacySettings.from_mapping(privacy) if privacy else None,
        state_dir=tmp_path / "state",
    )


def test_the_node_config_reads_back_as_the_same_settings(tmp_path):
    settings = _settings(tmp_path, epsilon=4.0, delta=1e-4)
    parsed = parse_config_args([node_config(settings)])
    assert NodeSettings.from_mapping(parsed) == settings


def test_the_supernode_dials_out_with_tls_and_the_node_key(tmp_path):
    options = NodeOptions(
        server="coordinator.test:9092",
        ca=tmp_path / "ca.pem",
        node_key=tmp_path / "node.key",
        settings=_settings(tmp_path),
    )
    argv = supernode_argv(options, 40001)
    assert argv[argv.index("--superlink") + 1] == "coordinator.test:9092"
    assert argv[argv.index("--root-certificates") + 1] == str(tmp_path / "ca.pem")
    assert argv[argv.index("--auth-supernode-private-key") + 1] == str(
        tmp_path / "node.key"
    )
    assert "--insecure" not in argv
    # its runtime API: a loopback port of its own (Flower binds 127.0.0.1)
    assert argv[argv.index("--port") + 1] == "40001"
    assert "--host" not in argv


@pytest.mark.parametrize("server", ["coordinator.test", ":9092", "host:port", ""])
def test_a_bad_server_address_is_refused(tmp_path, server):
    options = NodeOptions(
        server=server, ca=None, node_key=None, settings=_settings(tmp_path)
    )
    with pytest.raises(ConfigError, match="HOST:PORT"):
        options.check()


def test_an_exposed_node_key_is_refused(tmp_path):
    private, _ = make_node_key(tmp_path / "n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    options = NodeOptions(
        server="h:1", ca=ca, node_key=private, settings=_settings(tmp_path)
    )
    options.check()
    private.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        options.check()


def test_start_fails_before_connecting_when_the_dataset_is_missing(tmp_path):
    private, _ = make_node_key(tmp_path / "n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    done = subprocess.run(
        [
            str(BIN / "hospfed-client"),
            "start",
            "--server",
            "127.0.0.1:9",
            "--ca",
            str(ca),
            "--node-key",
            str(private),
            "--data",
            str(tmp_path / "missing.hfd"),
            "--key",
            str(tmp_path / "missing.key"),
            "--state",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("hospfed-client: error:")
    assert "missing" in done.stderr
    assert not (tmp_path / "state" / "supernode.log").exists()


def test_a_pytorch_hospital_process_never_imports_tensorflow():
    """What hospfed-client start and its per-message ClientApp load (torch backend)."""
    code = (
        "import sys, hospfed.client.node, hospfed.client.worker, hospfed.client.app;"
        "import hospfed.client.appguard;"
        "import hospfed.client.backends.torch_backend;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported';"
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
