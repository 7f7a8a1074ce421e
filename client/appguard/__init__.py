"""The hospital runs hospfed's ClientApp and nothing else.

Flower's SuperNode runs, for every message, the ClientApp that the run's
Flower app (its FAB) names, importing it from the FAB's own files if it
ships code. A coordinator could therefore make a hospital run any code. A
hospital started by ``hospfed-client start`` refuses: its SuperNode gets
this package's directory first on ``PYTHONPATH``, whose
``sitecustomize.py`` calls :func:`install` in each ``flwr-clientapp``
process (only there), before Flower loads the app. :func:`check_fab`
then accepts a FAB only if it names :data:`ALLOWED_CLIENTAPP` (the
installed ``hospfed.client.app:app``) and carries no code of its own;
anything else fails that message with an error naming the app, which the
coordinator sees.

This wraps one Flower function, ``flwr.clientapp.utils.get_load_client_app_fn``
(the loader ``flwr-clientapp`` uses in 1.42); ``tests/client/test_appguard.py``
pins that contract. Flower's own answer, signed FABs and
``--trusted-entities``, needs a signing service hospfed does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

ALLOWED_CLIENTAPP = "hospfed.client.app:app"
GUARD_DIR = Path(__file__).parent / "site"
"""Put first on the SuperNode's ``PYTHONPATH`` (holds ``sitecustomize.py``)."""
_ALLOWED_FILES = frozenset({"pyproject.toml", "README.md", "LICENSE", ".gitignore"})


class RefusedAppError(Exception):
    """The run's Flower app is not hospfed's."""


def check_fab(app_dir: Path) -> None:
    """Refuse a FAB that names another ClientApp or ships files of its own.

    Raises
    ------
    RefusedAppError
        Naming what was refused.

    """
    from flwr.common.config import get_project_config

    config = get_project_config(app_dir)
    ref = config.get("tool", {}).get("flwr", {}).get("app", {})
    clientapp = ref.get("components", {}).get("clientapp")
    if clientapp != ALLOWED_CLIENTAPP:
        raise RefusedAppError(
            f"this hospital runs only {ALLOWED_CLIENTAPP}; the run asked for "
            f"{clientapp!r}: refused"
        )
    extra = sorted(
        str(p.relative_to(app_dir))
        for p in app_dir.rglob("*")
        if p.is_file() and p.name not in _ALLOWED_FILES
    )
    if extra:
        raise RefusedAppError(
            f"the run's app ships files of its own ({', '.join(extra[:3])}); this "
            "hospital runs only the installed hospfed ClientApp: refused"
        )


def install() -> None:
    """Make ``flwr-clientapp`` check the FAB before loading its ClientApp."""
    from flwr.clientapp import utils
    from flwr.clientapp.client_app import LoadClientAppError
    from flwr.common.config import get_project_dir

    original: Callable[..., Any] = utils.get_load_client_app_fn

    def guarded(*args: Any, **kwargs: Any) -> Callable[[str, str, str], Any]:
        load = original(*args, **kwargs)

        def checked(fab_id: str, fab_version: str, fab_hash: str) -> Any:
            try:
                check_fab(Path(get_project_dir(fab_id, fab_version, fab_hash)))
            except RefusedAppError as exc:
                raise LoadClientAppError(str(exc)) from None
            return load(fab_id, fab_version, fab_hash)

        return checked

    utils.get_load_client_app_fn = guarded  # type: ignore[assignment]
