"""gunicorn settings for tests that watch the store's fsyncs: the gateway's own settings, and the sync spy
(:mod:`tests.support.syncspy`) installed before the app loads, so that every worker inherits it."""

import os
import sys
from pathlib import Path

from gateway.gunicorn_conf import *  # noqa: F403 - the gateway's settings, as the Procfile gives them

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import syncspy  # noqa: E402

syncspy.install_in_server(os.environ["SYNCSPY_DIR"])
