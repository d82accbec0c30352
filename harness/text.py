"""Untrusted text made plain: the one sanitiser for every string a student controls.

Names, submission ids, messages, stderr tails, ``error.json`` messages, progress phases and log lines
all come from students. Before any of them is printed, stored or written into a report, it goes
through :func:`plain_text`, which leaves only inert characters:

* terminal escape sequences are removed whole: CSI (``ESC [ ... final``, also the 8-bit ``0x9b``),
  OSC (``ESC ] ... BEL|ST``: window titles, OSC 8 links, OSC 52 clipboard writes), DCS/SOS/PM/APC
  strings (``ESC P|X|^|_ ... ST``) and two-byte ``ESC x`` sequences (``ESC c`` resets the terminal);
* every other C0 control character (BEL, backspace, carriage return, ...) except newline and tab,
  DEL and the C1 controls (``0x80``-``0x9f``) are dropped;
* Unicode bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069), which can make a
  terminal or a web page show text in another order than it is stored, are dropped; line and
  paragraph separators (U+2028, U+2029) become newlines;
* the result is cut to ``limit`` characters (with a trailing ``...`` marker) when one is given.

Markup is a renderer's business (rich markup, Markdown, HTML, CSV formulas): each renderer escapes
for its own format (see ``harness.render.tables``), after this function.
"""

from __future__ import annotations

import re

_ST = r"(?:\x07|\x1b\\|\x9c)"  # string terminators: BEL, ESC \, 8-bit ST
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI ... final byte
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\n]*?(?:" + _ST + r"|(?=\n)|\Z)"  # OSC/DCS/SOS/PM/APC
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]")  # two-byte (and nF) escapes: ESC c, ESC ( B, ESC 7, ...
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROLS_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
ELLIPSIS = "..."


def plain_text(value, limit: int | None = None, *, one_line: bool = False) -> str:
    """``value`` as inert plain text (see the module docstring); ``None`` becomes ``""``.

    ``one_line``: newlines and tabs become spaces too (names, table cells, progress phases).
    ``limit``: at most this many characters, the last ones ``...`` when text was cut.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > 8 * limit + 64:
        text = text[:8 * limit + 64]  # bound the work on a huge input; escapes only shrink it
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = _SEQUENCES.sub("", text)
    if one_line:
        text = _CONTROLS_ONE_LINE.sub(lambda m: " " if m.group() in "\n\t" else "", text)
    else:
        text = _CONTROLS.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[:max(limit - len(ELLIPSIS), 0)] + ELLIPSIS[:limit]
    return text


MAX_MESSAGE_CHARS = 2000  # a run's message (student text: errors, manifest problems) is cut to this


def clip_text(text, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as a string of at most about ``limit`` characters: what a student controls (a message,
    an error, a name) is cut before it is printed or stored, saying how much was cut."""
    text = text if isinstance(text, str) else str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f" ... [{len(text) - limit:,} more characters cut]"
