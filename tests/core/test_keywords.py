import pytest

from gateway.core.keywords import HELP, START, STOP, KeywordBook, KeywordSet, normalize
from gateway.settings import DEFAULTS_DIR, load_keywords

BOOK = load_keywords(DEFAULTS_DIR / "keywords.toml")
DEFAULT = BOOK.default


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("stop", "stop"),
        ("  Stop!  ", "stop"),
        ("STOP.", "stop"),
        ("ＳＴＯＰ", "stop"),  # fullwidth, folded by NFKC
        ("\u00a0stop\u00a0", "stop"),  # no-break spaces
        ("\u200bstop\u200d", "stop"),  # zero-width characters
        ("\u2003STOP\u3000", "stop"),  # em space, ideographic space
        ("stop ?", "stop"),
        ("stop!!", "stop!"),  # only one trailing punctuation character goes
        ("Opt  Out", "opt out"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("", ""),
        ("   ", ""),
        ("!", ""),
    ],
)
def test_normalize(body, expected):
    assert normalize(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "stop",
        "STOP",
        "Stop",
        "stopall",
        "STOP ALL",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "OPT OUT!",
        "  Stop!  ",
        "STOP.",
        "ＳＴＯＰ",
        "Cancel,",
        "quit;",
        "end?",
    ],
)
def test_stop_variants(body):
    assert DEFAULT.match(body) == STOP


@pytest.mark.parametrize("body", ["start", "START", "yes", "Yes!", "unstop", " UNSTOP. "])
def test_start_variants(body):
    assert DEFAULT.match(body) == START


@pytest.mark.parametrize("body", ["help", "HELP", "info", "Info?", "help."])
def test_help_variants(body):
    assert DEFAULT.match(body) == HELP


@pytest.mark.parametrize(
    "body",
    [
        "stop!!",
        "stop please",
        "we have to stop this",
        "please stop",
        "st op",
        "stopp",
        "s t o p",
        "opt-out",
        "yes please",
        "help me",
        "",
        "?",
        "stop.!",
        "..stop",
        "no",
    ],
)
def test_non_keywords(body):
    assert DEFAULT.match(body) is None


def test_configured_words_are_normalised():
    keywords = KeywordSet.build({"stop": ["  HALT! "]}, {"stop": "a", "start": "b", "help": "c"})
    assert keywords.match("halt") == STOP


def test_word_in_two_sets_is_rejected():
    with pytest.raises(ValueError, match="both the stop and start sets"):
        KeywordSet.build({"stop": ["stop"], "start": ["Stop"]}, {"stop": "a", "start": "b", "help": "c"})


@pytest.mark.parametrize("kind", ["stop", "start", "help"])
def test_every_reply_is_required(kind):
    replies = {"stop": "a", "start": "b", "help": "c", kind: " "}
    with pytest.raises(ValueError, match=f"the {kind} reply"):
        KeywordSet.build({"stop": ["stop"]}, replies)


def test_empty_stop_set_is_rejected():
    with pytest.raises(ValueError, match="stop keyword set must not be empty"):
        KeywordSet.build({"stop": []}, {"stop": "a", "start": "b", "help": "c"})


def test_default_replies_are_exact():
    assert DEFAULT.replies == {
        "stop": "You have been unsubscribed and will not receive further messages. Reply START to resubscribe.",
        "start": "You have been resubscribed and will receive messages again.",
        "help": "Reply STOP to unsubscribe or START to resubscribe.",
    }


REPLIES = {"stop": "a", "start": "b", "help": "c"}


@pytest.mark.parametrize(("word", "shown"), [(3, "3"), ("  ", "'  '"), ("!", "'!'"), (None, "None")])
def test_a_keyword_that_is_empty_or_not_text_is_refused(word, shown):
    with pytest.raises(ValueError) as info:
        KeywordSet.build({"stop": ["stop"], "help": [word]}, REPLIES)
    assert str(info.value) == f"help keyword {shown} is empty or not a string"


def test_the_stop_set_must_not_be_empty():
    with pytest.raises(ValueError) as info:
        KeywordSet.build({"start": ["start"]}, REPLIES)
    assert str(info.value) == "the stop keyword set must not be empty"


def test_a_set_keeps_its_replies_and_may_leave_kinds_out():
    keywords = KeywordSet.build({"stop": ["quit"]}, REPLIES)
    assert keywords.replies == REPLIES and keywords.match("start") is None
    direct = KeywordSet({"stop": frozenset({"quit"})}, REPLIES)  # no start or help words at all
    assert direct.match("QUIT") == STOP and direct.match("help") is None


def test_a_twilio_number_can_have_its_own_keywords():
    spanish = KeywordSet.build({"stop": ["alto"]}, REPLIES)
    book = KeywordBook(DEFAULT, {"+15005550007": spanish})
    assert book.for_number("+15005550007") is spanish
    assert book.for_number("+15005550006") is DEFAULT
    assert KeywordBook(DEFAULT).for_number("+15005550007") is DEFAULT
