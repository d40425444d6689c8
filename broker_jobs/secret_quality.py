"""Whether a signing secret is fit for production: long, varied, not a shipped placeholder.

The deploy files ship ``API_JWT_SECRET`` placeholders (``deploy/k8s/secret.yaml``,
``deploy/systemd/broker-jobs.env.example``); a copy applied unedited must not sign
production tokens, since anyone who read the repository could forge one.  The check is
a pure function so the settings (``APP_ENV=production``) and the tests share it.
"""

from __future__ import annotations

import re

#: HS256 keys should carry 256 bits: 32 characters at the very least.
MIN_LENGTH = 32
#: Fewer different characters than this is a pattern, not a random string
#: (64 random hex characters use all 16 with near certainty).
MIN_DISTINCT = 8
#: Words of placeholders, compared after lower-casing and dropping ``-``, ``_``, ``.`` and spaces.
#: Long enough never to turn up by chance in a random secret.
PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "yoursecret", "secretkey", "example",
                     "insertsecret", "notsecret", "xxxxxxxx", "dummysecret")
_ANGLE = re.compile(r"<[^<>]+>")  # <your secret here>


def weakness(secret: str) -> str | None:
    """Why ``secret`` must not be used in production, or None when it may.

    Parameters:
      secret: The secret's value.

    Returns:
      A short reason that never repeats the value.
    """
    if len(secret) < MIN_LENGTH:
        return f"it is {len(secret)} characters long, at least {MIN_LENGTH} are needed"
    distinct = len(set(secret))
    if distinct == 1:
        return "it is one character repeated"
    if distinct < MIN_DISTINCT:
        return f"it uses only {distinct} different characters"
    folded = re.sub(r"[-_.\s]", "", secret.lower())
    word = next((w for w in PLACEHOLDER_WORDS if w in folded), None)
    if word is not None or _ANGLE.search(secret):
        return f"it is a placeholder (contains {word or '<...>'!r})"
    return None
