"""The natural-language revocation phrase list (FCC 24-18), both ways."""

from __future__ import annotations

import pytest

from lily_host.sms.compliance import classify_keyword
from lily_host.sms.revocation import is_revocation

#: Replies that revoke consent: each must opt the sender out.
REVOCATIONS = (
    "please stop texting me",
    "Please stop texting me.",
    "STOP TEXTING ME!!!",
    "stop messaging me",
    "Stop sending me these",
    "quit texting me",
    "don't text me anymore",
    "Don\u2019t text me anymore",  # a phone keyboard's apostrophe
    "do not contact me",
    "Never text this number again",
    "dont message me",
    "no more texts please",
    "No more messages",
    "unsubscribe me",
    "I want to unsubscribe",
    "Unsubscribe me from this",
    "opt me out",
    "opt-out",
    "remove me from your list",
    "Remove my number",
    "take me off your list",
    "please take me off",
    "delete my number",
    "leave me alone",
    "stop please",
    "Please stop",
    "STOP NOW",
    "stop.",
    "I don't want these texts",
    "i do not want any more messages",
)

#: Ordinary replies that only contain such words: none may opt the sender out.
ORDINARY = (
    "stop by tomorrow?",
    "Can you stop by at 3?",
    "What time will you stop by",
    "The water won't stop leaking",
    "Don't stop, the driveway looks great",
    "is there a bus stop near you",
    "Yes please",
    "C",
    "R",
    "Can you text me the quote?",
    "Please text me when you're on the way",
    "I'll send photos",
    "Remember to bring the ladder",
    "take the left driveway",
    "My ZIP is 30301",
    "",
)


@pytest.mark.parametrize("body", REVOCATIONS)
def test_revocation_phrases_opt_out(body: str) -> None:
    assert is_revocation(body)


@pytest.mark.parametrize("body", ORDINARY)
def test_ordinary_sentences_are_not_revocations(body: str) -> None:
    assert not is_revocation(body)
    assert classify_keyword(body) is None or body.strip().upper() in {"C", "R"}
