"""gunicorn settings for tests that watch the store's fsyncs: the gateway's own settings, and the sync spy
(:mod:`tests.support.syncspy`) installed before the app loads, so that every worker inherits it."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
exec(compile((ROOT / "config" / "gunicorn.conf.py").read_text(), "config/gunicorn.conf.py", "exec"))  # noqa: S102
sys.path.insert(0, str(ROOT))

from tests.support import syncspy  # noqa: E402

syncspy.install_in_server(os.environ["SYNCSPY_DIR"])
