import pytest

from gateway.core import events
from gateway.core.compliance import Decision, clarify, decide, narrow, upstream_kind

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


def test_by_default_the_gateway_itself_replies():
    assert decide("stop", False, REPLIES).reply == "R-STOP"
    assert decide("stop", False, REPLIES).source == "keyword"


@pytest.mark.parametrize("opted_out", [False, True])
def test_a_revocation_candidate_is_delivered_flagged_unless_the_pair_is_opted_out(opted_out):
    decision = decide(None, opted_out, REPLIES, candidate="stop_contacting")
    if opted_out:  # dropped like any other message: the opt-out already covers it
        assert (decision.outcome, decision.event, decision.enqueue, decision.candidate) == (
            "dropped",
            "dropped",
            False,
            None,
        )
    else:
        assert decision == Decision(
            outcome="candidate",
            event="revocation_candidate",
            source="pattern",
            opted_out=False,
            state_changed=False,
            reply=None,
            enqueue=True,
            candidate="stop_contacting",
        )


def test_a_keyword_is_never_a_candidate():
    assert decide("stop", False, REPLIES, candidate="stop_contacting").candidate is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [("STOP", "stop"), ("start", "start"), (" HELP ", "help"), ("", None), (None, None), ("OTHER", None)],
)
def test_upstream_kind(value, kind):
    assert upstream_kind(value) == kind


ASK = "Acme: no more texts. To stop only offers, reply OFFERS."


def test_clarify_only_a_confirmed_stop_for_several_categories():
    stop = decide("stop", False, {"stop": "bye", "start": "hi", "help": "h"})
    assert clarify(stop, {"marketing", "informational"}, ASK).reply == ASK
    assert clarify(stop, {"marketing", "informational"}, ASK).asks == ("informational", "marketing")
    assert clarify(stop, {"marketing"}, ASK) == stop  # one category: the plain confirmation
    start = decide("start", True, {"stop": "bye", "start": "hi", "help": "h"})  # changes the state, replies
    assert clarify(start, {"marketing", "informational"}, ASK) == start  # only a revocation is clarified
    unchanged = Decision("already_opted_out", events.OPT_OUT, events.KEYWORD, True, False, "x", False)
    assert clarify(unchanged, {"marketing", "informational"}, ASK) == unchanged
    again = decide("stop", True, {"stop": "bye", "start": "hi", "help": "h"})  # already opted out: no reply at all
    assert clarify(again, {"marketing", "informational"}, ASK) == again
    upstream = decide("stop", False, {"stop": "bye", "start": "hi", "help": "h"}, upstream=True)  # Twilio replied
    assert clarify(upstream, {"marketing", "informational"}, ASK) == upstream
    answer = narrow(7, ("marketing",))
    assert answer == Decision(
        "clarified", events.OPT_IN, events.CLARIFICATION, False, True, None, False, None, (), (7, ("marketing",))
    )
