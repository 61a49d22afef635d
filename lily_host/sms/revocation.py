"""Natural-language revocation of consent: "please stop texting me" is an opt-out like STOP.

Since 2025-04-11 (FCC 24-18, 47 CFR 64.1200(a)(10)) a consumer may revoke consent "by any
reasonable means", and a reply in plain words is one. The keywords (STOP, UNSUBSCRIBE, ...) stay
whole-body matches (:func:`lily_host.sms.compliance.classify_keyword`); this module recognises the
sentences around them. It errs towards opting out (a missed revocation is the costly mistake),
but an ordinary sentence that merely contains "stop" ("can you stop by tomorrow?") is not one:
the word has to be the whole request ("stop please") or aimed at the texts ("stop texting").

The phrase list is tested both ways in ``tests/automations/test_revocation.py``; extend it there.
"""

from __future__ import annotations

import re

#: Words that may surround a bare "stop" without changing what it asks for.
_POLITE = r"(?:please|pls|plz|now|thanks|thank you|thx|ok|okay|asap|already|immediately|for real|seriously)"

_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        # "stop", "please stop", "stop please!!", "STOP NOW" (the whole message is the request)
        rf"^(?:{_POLITE} )*(?:stop|stopall|unsubscribe|opt out|optout)(?: {_POLITE})*$",
        # "stop texting me", "stop sending these", "stop contacting me", "quit messaging me"
        r"\b(?:stop|quit|cease) (?:all )?(?:texting|txting|messaging|msging|sending|contacting|spamming|"
        r"calling and texting|texts|messages)\b",
        # "don't text me anymore", "do not contact me", "never text this number again"
        r"\b(?:do not|dont|don't|never) (?:ever )?(?:text|txt|message|msg|sms|contact)\b",
        # "no more texts", "no more messages please"
        r"\bno more (?:texts|text messages|txts|messages|msgs|sms)\b",
        # "unsubscribe me", "I want to unsubscribe", "opt me out", "opt-out"
        r"\bunsubscribe\b",
        r"\bopt (?:me )?out\b",
        # "remove me from your list", "take me off your list", "remove my number", "delete my number"
        r"\b(?:remove|take|delete) (?:me|my number|this number|my phone number)\b",
        r"\btake me off\b",
        # "leave me alone"
        r"\bleave me alone\b",
        # "I don't want these texts", "I do not want any more messages"
        r"\b(?:do not|dont|don't) want (?:any more |anymore |any |these |your )?(?:texts|messages|txts|msgs)\b",
    )
)


def normalize(body: str) -> str:
    """Lowercase words separated by single spaces; apostrophes kept ("don't"), other punctuation dropped."""
    text = body.lower().replace("\u2019", "'").replace("\u2018", "'").replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def is_revocation(body: str) -> bool:
    """Does this inbound text ask the business to stop texting? (Keywords are matched elsewhere.)"""
    text = normalize(body)
    return bool(text) and any(pattern.search(text) for pattern in _PATTERNS)
