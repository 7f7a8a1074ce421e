"""The coordinator's deployment parts, without processes: certificates, the
Fleet-only front, the register, run outcomes, and the contracts with Flower
they depend on (checked against the installed Flower, not restated)."""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import threading
import tomllib
from pathlib import Path

import flwr
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.common.config import parse_config_args
from starlette.testclient import TestClient

from hospfed.common.daemons import flower_pairs
from hospfed.common.errors import ConfigError, KeyFileError
from hospfed.server.certs import CertPaths, key_fingerprint, make_certs
from hospfed.server.config import RUN_CONFIG_KEYS
from hospfed.server.control import _json_answer
from hospfed.server.daemon import StateDir, superlink_argv
from hospfed.server.front import FLEET_PATHS, Upstream, make_front
from hospfed.server.hospitals import admit, file_fingerprint, listing
from hospfed.server.runs import RunError, _outcome, round_line

FLWR = Path(flwr.__file__).parent


def test_the_server_certificate_chains_to_the_ca_and_names_loopback(tmp_path):
    paths = make_certs(tmp_path / "certs", ["coordinator.test", "10.1.2.3"])
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server.read_bytes())
    server.verify_directly_issued_by(ca)
    alt = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(alt.get_values_for_type(x509.DNSName)) == {
        "coordinator.test",
        "localhost",
    }
    assert {str(a) for a in alt.get_values_for_type(x509.IPAddress)} == {
        "10.1.2.3",
        "127.0.0.1",
    }
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ca.parent.stat().st_mode) == 0o700


def test_certificates_are_never_replaced(tmp_path):
    paths = make_certs(tmp_path, ["a.test"])
    before = {p: p.read_bytes() for p in vars(paths).values()}
    with pytest.raises(ConfigError, match="never replaced"):
        make_certs(tmp_path, ["b.test"])
    assert {p: p.read_bytes() for p in vars(paths).values()} == before


@pytest.mark.parametrize("host", ["a b", "https://x.test", "user@x", "x.test/path"])
def test_a_malformed_host_is_refused_before_anything_is_written(tmp_path, host):
    with pytest.raises(ConfigError, match="neither a DNS name nor an IP"):
        make_certs(tmp_path / "c", [host])
    assert not (tmp_path / "c").exists()


def test_an_exposed_server_key_is_refused(tmp_path):
    paths = make_certs(tmp_path, ["a.test"])
    paths.server_key.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        CertPaths.of(tmp_path).check()


@pytest.mark.parametrize("name", ["127.0.0.1", "coordinator.test"])
def test_a_tls_handshake_verifies_with_the_ca(tmp_path, name):
    paths = make_certs(tmp_path, ["coordinator.test"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(paths.server, paths.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=accept)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(paths.ca))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        assert tls.recv(2) == b"ok"
    thread.join()
    listener.close()


def test_the_front_forwards_exactly_the_paths_flowers_supernode_calls():
    """Contract with Flower: every Fleet path its SuperNode uses, and no other."""
    source = (FLWR / "supernode" / "fleet_http_client.py").read_text()
    assert set(re.findall(r'path="(/v1/fleet/[a-z-]+)"', source)) == FLEET_PATHS


def test_the_front_refuses_everything_else_without_asking_the_superlink():
    front = make_front(Upstream(port=1, ca=None))  # nothing listens on port 1
    with TestClient(front) as client:
        for method, path in [
            ("POST", "/v1/control/list-runs"),
            ("POST", "/v1/control/register-node"),
            ("POST", "/v1/runtime/acquire-task"),
            ("GET", "/v1/fleet/get-run"),
            ("POST", "/v1/fleet/../control/list-runs"),
            ("POST", "/docs"),
        ]:
            assert client.request(method, path).status_code == 404, path
        # a Fleet call is forwarded: with no SuperLink behind, 503
        assert client.post("/v1/fleet/get-run", content=b"x").status_code == 503


def test_the_superlink_listens_on_loopback_with_tls_and_node_auth(tmp_path):
    argv = superlink_argv(StateDir.at(tmp_path), 1234, CertPaths.of(tmp_path))
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--enable-supernode-auth" in argv
    assert "--disable-runtime-dependency-installation" in argv
    assert "--insecure" not in argv


def test_the_app_declares_every_run_config_key_unset(tmp_path):
    state = StateDir.at(tmp_path / "s")
    state.prepare()
    app = tomllib.loads((state.app / "pyproject.toml").read_text())
    keys = (*RUN_CONFIG_KEYS, "resume")
    assert app["tool"]["flwr"]["app"]["config"] == dict.fromkeys(keys, "")
    components = app["tool"]["flwr"]["app"]["components"]
    assert components == {
        "serverapp": "hospfed.server.app:app",
        "clientapp": "hospfed.client.app:app",
    }


@pytest.mark.parametrize(
    "value",
    [
        "/srv/hospital data/site.hfd",
        "C:\\data\\x",
        "Zürich-Spital",
        "a=b c",
        "it's",
        "3",
    ],
)
def test_config_pairs_reach_flower_intact(value):
    line = flower_pairs({"data": value, "num-rounds": "3"}, flag="--node-config")
    assert parse_config_args([line]) == {"data": value, "num-rounds": "3"}


def test_a_value_flower_would_cut_is_refused():
    with pytest.raises(ConfigError, match="data"):
        flower_pairs({"data": 'a"b'}, flag="--node-config")


def test_flwr_json_is_read_after_its_log_lines():
    assert _json_answer(
        'Using SuperLink: x\n{\n "success": true, "run-id": 7\n}\n'
    ) == {
        "success": True,
        "run-id": 7,
    }
    assert _json_answer("no json here") is None


def test_the_fingerprint_is_the_one_ssh_keygen_shows(tmp_path):
    key = ec.derive_private_key(123456789, ec.SECP384R1())
    pub = tmp_path / "node.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    shown = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert file_fingerprint(pub) == shown == key_fingerprint(key.public_key())


def test_admit_refuses_a_bad_name_or_key_before_calling_flower(tmp_path):
    state = StateDir.at(tmp_path / "s")
    pub = tmp_path / "node.pub"
    pub.write_text("not a key\n")
    with pytest.raises(ConfigError, match="lowercase"):
        admit(state, "Bad Name", pub)
    with pytest.raises(KeyFileError, match="OpenSSH public key"):
        admit(state, "cleveland", pub)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = tmp_path / "ed.pub"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    with pytest.raises(KeyFileError, match="EC key"):
        admit(state, "cleveland", other)


def test_a_run_is_complete_only_when_flower_and_hospfed_both_say_so(tmp_path):
    done = {"status": "complete", "completed_rounds": 3}
    lines: list[str] = []
    assert (
        _outcome("1", {"status": "finished:completed"}, done, tmp_path, lines.append)
        == 0
    )
    assert "3 rounds" in lines[0]
    failed = {"status": "failed", "reason": "round 2 (train) failed: ..."}
    with pytest.raises(RunError, match=r"round 2 \(train\) failed"):
        _outcome("1", {"status": "finished:failed"}, failed, tmp_path, lines.append)
    with pytest.raises(RunError, match="no results"):  # Flower's word is not enough
        _outcome("1", {"status": "finished:completed"}, None, tmp_path, lines.append)
    with pytest.raises(RunError, match="stopped"):
        _outcome(
            "1",
            {"status": "finished:stopped", "status-details": "stopped by user"},
            None,
            tmp_path,
            lines.append,
        )


def test_a_round_line_shows_metrics_and_epsilon_only():
    row = {
        "round": 2,
        "weighted": {"accuracy": 0.5, "auc": 0.61, "loss": 0.7},
        "epsilon": {"max": 1.25, "a": 1.25},
        "evaluate": {"a": {}, "b": {}},
        "declined": ["c"],
    }
    assert round_line(row, 3) == (
        "round 2/3, accuracy 0.5000, auc 0.6100, loss 0.7000, epsilon max 1.250, "
        "hospitals 2, declined c"
    )


def test_the_register_reads_its_known_answer_file(tmp_path):
    """hospitals.json format 1 (tests/server/vectors/hospitals-v1.json)."""
    import shutil

    state = StateDir.at(tmp_path)
    vector = Path(__file__).parent / "vectors" / "hospitals-v1.json"
    shutil.copy(vector, state.hospitals)
    rows = listing(state, live=False)
    assert [(r["hospital"], r["status"], r["node_id"]) for r in rows] == [
        ("cleveland", "unknown", "1771432316084151093"),
        ("hungary", "revoked", "13570264531081423035"),
    ]
    assert (
        rows[0]["fingerprint"] == "SHA256:2XqE3no6JxmJXlL0EM2m8hNMyxuBtI+/S8UHKJQVGlE"
    )
    assert rows[1]["revoked"] == "2026-11-30T05:01:00+00:00"


def _server(*args: object) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [str(Path(sys.executable).parent / "hospfed-server"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_without_a_daemon_says_how_to_start_one(tmp_path):
    done = _server("run", "--state", tmp_path / "s", "num-rounds=1")
    assert done.returncode == 2
    assert (
        "no daemon is running" in done.stderr and "hospfed-server start" in done.stderr
    )


def test_start_needs_certificates_or_an_explicit_insecure(tmp_path):
    done = _server("start", "--state", tmp_path / "s")
    assert done.returncode == 2 and "--certs DIR, or --insecure" in done.stderr
    done = _server("start", "--state", tmp_path / "s", "--certs", tmp_path / "none")
    assert done.returncode == 2 and "hospfed-server certs" in done.stderr


def test_resume_refuses_a_directory_that_is_not_one_of_the_daemons_runs(tmp_path):
    import json
    import os

    state = StateDir.at(tmp_path / "s")
    state.prepare()
    state.info.write_text(json.dumps({"pid": os.getpid()}))  # "running"
    done = _server("run", "--state", state.root, "--resume", tmp_path)
    assert done.returncode == 2 and "not a run of this daemon" in done.stderr


def test_a_killed_daemons_leftover_file_does_not_count(tmp_path):
    import json

    from hospfed.server.daemon import read_info

    state = StateDir.at(tmp_path)
    state.info.write_text(json.dumps({"pid": 2**22 + 12345}))
    assert read_info(state) is None


def test_a_run_config_file_that_is_not_toml_is_refused(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_text("num-rounds = \n")
    done = _server("run", "--state", tmp_path / "s", "--config", bad)
    assert done.returncode == 2 and "not valid TOML" in done.stderr


def test_a_taken_port_fails_before_the_superlink_starts(tmp_path):
    make_certs(tmp_path / "certs", ["a.test"])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _server(
            "start",
            "--state",
            tmp_path / "s",
            "--certs",
            tmp_path / "certs",
            "--host",
            "127.0.0.1",
            "--port",
            port,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "s" / "superlink.log").exists()
    assert not (tmp_path / "s" / "daemon.json").exists()


class _FinishedControl:
    def run_status(self, run_id):
        return {"status": "finished:stopped"}


def test_a_stopped_run_whose_serverapp_was_killed_is_marked_interrupted(tmp_path):
    import json

    from hospfed.server.runs import _mark_stopped

    running = {"status": "running", "reason": None, "completed_rounds": 2, "run": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(running))
    _mark_stopped(_FinishedControl(), "7", tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert "stopped during round 3" in metrics["reason"]
    assert "**interrupted**" in (tmp_path / "model-card.md").read_text()
    recorded = {"status": "interrupted", "reason": "by the ServerApp itself"}
    (tmp_path / "metrics.json").write_text(json.dumps(recorded))
    _mark_stopped(_FinishedControl(), "7", tmp_path)  # left as the ServerApp wrote it
    assert json.loads((tmp_path / "metrics.json").read_text()) == recorded
