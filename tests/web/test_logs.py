import logging
import sys

import pytest

from gateway.web.logs import FORMAT, LineFormatter


def record(message: str, *args, created: float = 1_764_579_600.25, exc_info=None) -> logging.LogRecord:
    rec = logging.LogRecord("gateway.request", logging.INFO, __file__, 1, message, args, exc_info)
    rec.created, rec.msecs = created, (created - int(created)) * 1000
    return rec


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/x\n2026-12-01 INFO gateway.request: POST /twilio/sms 200 outcome=opt_out", "/x\\n2026-12-01 INFO"),
        ("/x\r\nforged", "/x\\r\\nforged"),
        ("/x\x1b[2Jcleared", "/x\\x1b[2Jcleared"),
        ("/x\u2028forged", "/x\\u2028forged"),
        ("/x\x85forged", "/x\\x85forged"),
    ],
)
def test_a_client_cannot_start_a_line_of_its_own(path, shown):
    line = LineFormatter(FORMAT).format(record("GET %s 404", path))
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert shown in line


def test_a_traceback_still_follows_on_its_own_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        line = LineFormatter(FORMAT).format(record("unhandled error on %s", "/a\nb", exc_info=sys.exc_info()))
    first, *rest = line.splitlines()
    assert first.endswith("unhandled error on /a\\nb")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


@pytest.mark.parametrize("created", [1_764_579_600.0, 1_764_579_600.999, 1_764_579_601.5, 1_764_579_659.001, 0.5])
def test_the_time_reads_as_loggings_own(created):
    ours, standard = LineFormatter(FORMAT), logging.Formatter(FORMAT)
    for moment in (created, created + 0.25, created + 1):  # the same second again, then the next
        assert ours.format(record("x", created=moment)) == standard.format(record("x", created=moment))


def test_the_gateway_logs_through_it(app, client, gateway_log):
    (handler,) = [h for h in logging.getLogger("gateway").handlers if type(h) is logging.StreamHandler]
    assert isinstance(handler.formatter, LineFormatter)
    assert client.get("/nothing%0A2026-12-01 INFO gateway.request: POST /twilio/sms 200").status_code == 404
    (rec,) = [r for r in gateway_log.records if r.name == "gateway.request"]
    assert "\n" in rec.getMessage() and "\n" not in handler.formatter.format(rec)
