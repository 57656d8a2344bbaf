"""LOINC code syntax and the Mod 10 check digit.

The algorithm is the one in the LOINC Users' Guide, appendix "Calculating Mod 10 Check
Digits" (https://loinc.org/kb/users-guide/calculating-mod-10-check-digits/): from the right,
double the digits in odd positions, write the even-position digits in front of that
product, add up all the digits, and the check digit is what takes the sum to the next
multiple of 10 (12345 -> 5, so 12345-5).
"""

from __future__ import annotations

import re

_SYNTAX = re.compile(r"^(?P<body>\d{1,7})-(?P<check>\d)$")

# Codes LOINC itself lists as having invalid check digits (all deprecated duplicates).
KNOWN_BAD_CHECK_DIGITS = frozenset(
    {
        "11491-6",
        "11501-6",
        "5895-7",
        "5896-5",
        "5897-3",
        "5928-1",
        "6028-3",
        "6415-5",
        "6580-7",
        "6645-7",
        "6646-5",
        "6647-3",
        "6648-1",
        "6649-9",
    }
)


def check_digit(body: str) -> int:
    """The Mod 10 check digit of the digits before the hyphen (``"1742"`` -> 6)."""
    if not body.isdigit():
        raise ValueError(f"{body!r} is not a string of digits")
    from_right = body[::-1]
    odd = from_right[0::2]  # steps 1-2: 12345 -> "531"
    doubled = str(int(odd) * 2)  # step 3: 1062
    even = from_right[1::2]  # step 4: "42"
    total = sum(int(d) for d in even + doubled)  # steps 5-6: 4+2+1+0+6+2 = 15
    return (10 - total % 10) % 10  # steps 7-8: 20 - 15 = 5


def loinc_problem(code: str) -> str | None:
    """Why ``code`` is not a well-formed LOINC code, or None when it is."""
    match = _SYNTAX.match(code)
    if match is None:
        return f"LOINC code {code!r} is malformed (expected digits, a hyphen, a check digit)"
    expected = check_digit(match["body"])
    if int(match["check"]) != expected and code not in KNOWN_BAD_CHECK_DIGITS:
        return (
            f"LOINC code {code!r} has a wrong check digit (Mod 10 gives {match['body']}-{expected})"
        )
    return None
