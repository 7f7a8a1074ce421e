"""Loaded by every Python process under a hospital's SuperNode (PYTHONPATH).

Only in ``flwr-clientapp`` does it act: see :mod:`hospfed.client.appguard`.
"""

import os
import sys

if os.path.basename(sys.argv[0] if sys.argv else "") == "flwr-clientapp":
    from hospfed.client.appguard import install

    install()
