"""Keyword matching and the settings it reads, without the app."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lily_chatwoot.rules import choose_reply
from lily_chatwoot.settings import ChatwootSettings, ChatwootTenantSettings, ReplyRule

RULES = [
    ReplyRule(keyword="price", reply="A"),
    ReplyRule(keyword="how much", reply="B"),
    ReplyRule(keyword="c++", reply="C"),
]


@pytest.mark.parametrize(
    ("content", "reply"),
    [
        ("price", "A"),
        ("What's the PRICE?", "A"),
        ("price/how much", "A"),  # both match: the first rule wins
        ("How   MUCH is it", "B"),
        ("prices", None),
        ("overpriced", None),
        ("price_list", None),  # an underscore is a word character
        ("we use c++ here", "C"),
        ("précio price", "A"),
        ("", None),
    ],
)
def test_whole_word_case_insensitive_first_match_wins(content: str, reply: str | None) -> None:
    assert choose_reply(RULES, None, content) == reply


def test_the_default_reply_answers_what_no_rule_matches() -> None:
    assert choose_reply(RULES, "D", "hello") == "D"
    assert choose_reply(RULES, "D", "price") == "A"
    assert choose_reply([], None, "anything") is None


def test_rules_may_be_given_as_an_ordered_object() -> None:
    settings = ChatwootTenantSettings.model_validate({"rules": {"price": "A", "hours": "B"}, "account_id": 12})
    assert [(rule.keyword, rule.reply) for rule in settings.rules] == [("price", "A"), ("hours", "B")]
    assert settings.account_id == "12"


def test_a_bad_jitter_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATWOOT_REPLY_JITTER", "45-10")
    with pytest.raises(ValidationError, match="CHATWOOT_REPLY_JITTER"):
        ChatwootSettings()
    monkeypatch.setenv("CHATWOOT_REPLY_JITTER", "5-20")
    assert ChatwootSettings().jitter == (5.0, 20.0)
