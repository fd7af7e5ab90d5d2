"""The values the tests share: tokens, numbers, SIDs, the checkout's root and where artefacts go."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a run leaves for people to look at (the console's screenshots); CI can keep the folder.
ARTEFACTS = Path(os.environ.get("GATEWAY_TEST_ARTEFACTS") or ROOT / "test-artefacts")
TOKEN = "0123456789abcdef0123456789abcdef"
TWILIO_NUMBER = "+15005550006"
OTHER_TWILIO_NUMBER = "+15005550007"
SENDER = "+14155550100"
FORM = "application/x-www-form-urlencoded"
ENV_PREFIXES = ("GATEWAY_", "TWILIO_", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
ACCOUNT = "AC" + "a" * 32
AGENT_SECRET = "s3cret-for-the-agent-0123456789"
SERVICE = "MG" + "b" * 32
NO_SETTINGS = ROOT / "tests" / "support" / "no_settings.toml"


BACKENDS = ("sqlite", "postgresql")


# Three Twilio accounts: the main one (today's single-account settings) and two subaccounts.
BRAND_ACCOUNT, REGION_ACCOUNT = "AC" + "b" * 32, "AC" + "c" * 32
BRAND_TOKEN, REGION_TOKEN, REGION_NEXT_TOKEN = "b" * 32, "c" * 32, "d" * 32
BRAND_NUMBER, REGION_NUMBER = OTHER_TWILIO_NUMBER, "+15005550008"
