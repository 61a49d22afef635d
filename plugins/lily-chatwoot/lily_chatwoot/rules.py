"""Which reply a customer's message gets: the first rule whose keyword appears as a whole word."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from lily_chatwoot.settings import ReplyRule


@functools.lru_cache(maxsize=4096)
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """``keyword`` as a whole word or phrase, any case, any run of spaces between its words.

    Word boundaries are "no letter, digit or underscore on either side", so "price" matches
    "Price?" and "the price," but not "prices" or "priceless"; Unicode letters count as letters.
    """
    words = [re.escape(word) for word in keyword.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def choose_reply(rules: Sequence[ReplyRule], default_reply: str | None, content: str) -> str | None:
    """The reply to ``content``: the first matching rule's, else ``default_reply`` (None: no reply)."""
    for rule in rules:
        if keyword_pattern(rule.keyword).search(content):
            return rule.reply
    return default_reply
