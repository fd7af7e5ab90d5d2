import pytest

from gateway.compliance import decide, upstream_kind

REPLIES = {"stop": "R-STOP", "start": "R-START", "help": "R-HELP"}


@pytest.mark.parametrize(
    ("kind", "opted_out", "upstream", "outcome", "event", "source", "after", "changed", "reply", "enqueue"),
    [
        ("stop", False, False, "opt_out", "opt_out", "keyword", True, True, "R-STOP", False),
        ("stop", True, False, "already_opted_out", "opt_out", "keyword", True, False, None, False),
        ("start", True, False, "opt_in", "opt_in", "keyword", False, True, "R-START", False),
        ("start", False, False, "opt_in", "opt_in", "keyword", False, False, "R-START", False),
        ("help", False, False, "help", "help", "keyword", False, False, "R-HELP", False),
        ("help", True, False, "help", "help", "keyword", True, False, "R-HELP", False),
        (None, False, False, "queued", None, None, False, False, None, True),
        (None, True, False, "dropped", "dropped", "opted_out", True, False, None, False),
        # Twilio's Advanced Opt-Out already replied: same state change, no reply.
        ("stop", False, True, "opt_out", "opt_out", "twilio", True, True, None, False),
        ("stop", True, True, "already_opted_out", "opt_out", "twilio", True, False, None, False),
        ("start", True, True, "opt_in", "opt_in", "twilio", False, True, None, False),
        ("help", False, True, "help", "help", "twilio", False, False, None, False),
    ],
)
def test_decide(kind, opted_out, upstream, outcome, event, source, after, changed, reply, enqueue):
    decision = decide(kind, opted_out, REPLIES, upstream=upstream)
    assert (decision.outcome, decision.event, decision.source) == (outcome, event, source)
    assert (decision.opted_out, decision.state_changed, decision.reply, decision.enqueue) == (
        after,
        changed,
        reply,
        enqueue,
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [("STOP", "stop"), ("start", "start"), (" HELP ", "help"), ("", None), (None, None), ("OTHER", None)],
)
def test_upstream_kind(value, kind):
    assert upstream_kind(value) == kind
