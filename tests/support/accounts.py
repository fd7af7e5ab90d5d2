"""Settings for sending and for several Twilio accounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    REGION_ACCOUNT,
    REGION_NEXT_TOKEN,
    REGION_NUMBER,
    REGION_TOKEN,
    SERVICE,
    TOKEN,
    TWILIO_NUMBER,
)
from .fake_twilio import FakeTwilio


def outbound_config(db_url: str, fake: FakeTwilio, senders: str = f"{TWILIO_NUMBER},+15005550007,{SERVICE}") -> dict:
    """App settings with sending enabled against ``fake``."""
    return {
        "DATABASE_URL": db_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_BASE": fake.base_url,
        "SENDERS_OVERRIDE": senders,
        "STATUS_CALLBACK_URL": "https://gw.example.com/twilio/status",
    }


def three_accounts(tmp_path: Path) -> dict[str, str]:
    """Environment for three accounts: a configuration file naming each subaccount's token files.

    The main account is ACCOUNT with TOKEN and TWILIO_NUMBER; ``brand`` owns
    BRAND_NUMBER; ``region`` owns REGION_NUMBER and is mid-rotation (two tokens).
    """
    for name, token in (("brand", BRAND_TOKEN), ("region", REGION_TOKEN), ("region-next", REGION_NEXT_TOKEN)):
        (tmp_path / f"{name}.token").write_text(token + "\n")
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'''[accounts.brand]
account_sid = "{BRAND_ACCOUNT}"
auth_token_file = "{tmp_path / "brand.token"}"
senders = {{ dev = ["{BRAND_NUMBER}"] }}

[accounts.region]
account_sid = "{REGION_ACCOUNT}"
auth_token_file = "{tmp_path / "region.token"}"
secondary_auth_token_file = "{tmp_path / "region-next.token"}"
senders = {{ dev = ["{REGION_NUMBER}"] }}
'''
    )
    return {
        "GATEWAY_CONFIG_FILE": str(path),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_SENDERS": TWILIO_NUMBER,
    }


@dataclass
class TwoAccounts:
    """Records of two subaccounts (brand and region) in one gateway, and keys limited to each or to none."""

    app: Any
    keys: dict[str, str]  # who -> key: brand_auditor, brand_admin, brand_sender, region_auditor, everyone
    users: dict[str, str]  # brand_stop, brand_plea, region_stop, region_plea -> the person's number
    candidates: dict[str, int]  # brand, region -> the id of its revocation candidate

    # What must never appear in an answer to a key limited to brand.
    @property
    def region_marks(self) -> tuple[str, ...]:
        return (REGION_NUMBER, REGION_ACCOUNT, self.users["region_stop"], self.users["region_plea"])
