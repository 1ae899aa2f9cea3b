"""The text index: the calls in a module's source that might be uses, read from the text.

Parsing a module costs more than compiling it, and almost no module has a finding, so
the import hook reads the text first: the call just after ``await`` or after the ``in`` of
a ``for``, the calls that start an item of a ``with`` header, and the argument of
``Depends(``/``Security(``. These are a superset of the uses ``_scan.parse_uses`` finds
(text in strings and comments included), found with ``str``-level searches, and cached per
file. Once the module ran, ``_scan.needs_parse`` resolves each in its globals; only if
one is a provider that may not speak the protocol is the source parsed, and the parser
decides. When the text leaves any doubt about a protocol, the call is recorded as
UNSURE, which any provider turns into a parse.

A module of its own so that a module imported again, its index cached, costs no
regular-expression compiling.
"""

from __future__ import annotations

import keyword as _keyword
import re
from typing import Optional, Union

from . import _kinds as k
from ._scan import (
    _DEPENDS_NAMES,
    _MAX_CHAIN,
    ATTRIBUTE,
    DEPENDS,
    DEPENDS_UNSURE,
    REENTER,
    SESSION_NAMES,
    UNSURE,
    IndexedCall,
)

_KEYWORD = re.compile(r"(?:await|with|in|Depends|Security)\b")
_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_IDENTIFIER_BEFORE = re.compile(r"[^\W\d]\w*$")
# Whitespace, line continuations and comments: what may stand between two tokens.
_GAP = re.compile(r"(?:[ \t\f\r\n]+|\\\r?\n|#[^\r\n]*)*")
_DEPENDENCY_KEYWORD = re.compile(r"\bdependency\s*=(?!=)")
# What the scan of a bracketed or header text stops at.
_SIGNIFICANT = re.compile(r"[()\[\]{}:,'\"#\n\\]")
_OPENING = {"(": ")", "[": "]", "{": "}"}
# With headers and Depends() calls longer than this (strings and comments not counted)
# are not read: the module is parsed.
_MAX_SCAN = 4000
_PARSE_ALWAYS: IndexedCall = (UNSURE, (), ())
# A session attribute taken on something (`.execute`, `. commit`): PG103 if that is
# what a provider returned.
_SESSION_ATTRIBUTE = re.compile(
    # (each step of the gap starts with its own character: no backtracking to speak of)
    r"\.(?:[ \t\f\r\n]|\\\r?\n|#[^\r\n]*\n)*(?:" + "|".join(sorted(SESSION_NAMES)) + r")(?!\w)"
)
# After a name, what makes it assigned (`db = `, `db: AsyncSession = `), perhaps. Searched
# for one name at a time: a pattern that starts with the name's letters is found fast.
_ASSIGNED = r"(?:[ \t\f]|\\\r?\n)*(:[^\r\n=]*)?=(?!=)"
_KEYWORDS = frozenset(_keyword.kwlist)


def _skip(source: str, pos: int) -> int:
    return _GAP.match(source, pos).end()  # type: ignore[union-attr]


def _at(source: str, pos: int, text: str) -> bool:
    """``source.startswith(text, pos)``, false for a negative ``pos``."""
    return pos >= 0 and source.startswith(text, pos)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _chain(source: str, pos: int) -> Optional[tuple[tuple[str, ...], str, int]]:
    """The name or attribute chain at ``pos``, parentheses allowed around it and its
    parts (``f``, ``(a).b``): (its parts, the character after it, how many of the
    parentheses before it are still open); None if there is no chain there or it is
    longer than the parser follows."""
    opened = 0
    while source.startswith("(", pos):
        opened += 1
        pos = _skip(source, pos + 1)
    match = _IDENTIFIER.match(source, pos)
    if match is None:
        return None
    parts = [match.group()]
    pos = match.end()
    while len(parts) <= _MAX_CHAIN:
        pos = _skip(source, pos)
        char = source[pos : pos + 1]
        if char == ".":
            match = _IDENTIFIER.match(source, _skip(source, pos + 1))
            if match is None:
                return None
            parts.append(match.group())
            pos = match.end()
        elif char == ")" and opened:
            opened -= 1
            pos += 1
        else:
            return tuple(parts), char, opened
    return None


def _called_at(source: str, pos: int) -> Optional[tuple[str, ...]]:
    """The chain called by the expression starting at ``pos``: ``f`` in ``f(...)``,
    ``(f)(...)``, ``((a).b)(...)``; None if the expression does not start with a call of
    a name or an attribute chain."""
    found = _chain(source, _skip(source, pos))
    return found[0] if found is not None and found[1] == "(" else None


def _string_end(source: str, pos: int) -> int:
    """The end of the string literal whose quote is at ``pos`` (its line's end if it is
    not closed there, the text's end for an unclosed triple-quoted one)."""
    quote = source[pos]
    if source.startswith(quote * 3, pos):
        delimiter = quote * 3
        cursor = pos + 3
        while True:
            end = source.find(delimiter, cursor)
            if end < 0:
                return len(source)
            escapes = 0
            while source[end - 1 - escapes] == "\\":
                escapes += 1
            if escapes % 2 == 0:
                return end + 3
            cursor = end + 1
    cursor = pos + 1
    size = len(source)
    while cursor < size:
        char = source[cursor]
        if char == "\\":
            cursor += 2
            continue
        if char == quote:
            return cursor + 1
        if char == "\n":
            return cursor
        cursor += 1
    return size


def _scan_region(source: str, pos: int, *, header: bool) -> tuple[Optional[int], list[int]]:
    """Scan from ``pos`` (just after ``with``, or just after a call's ``(``), skipping
    strings and comments, to the end of the ``with`` header (a ``:`` or a line end outside
    brackets) or to the call's closing ``)``. Returns that end (None if the text is too
    long or never ends) and the positions just after each comma outside inner brackets
    (a with header's own parentheses count as outside)."""
    stack: list[str] = []
    commas: list[int] = []
    budget = _MAX_SCAN  # characters outside strings and comments
    cursor = pos
    while True:
        match = _SIGNIFICANT.search(source, cursor)
        if match is None:
            return (len(source) if header else None), commas
        index = match.start()
        budget -= index - cursor + 1
        if budget < 0:
            return None, commas
        char = source[index]
        cursor = index + 1
        if char in _OPENING:
            stack.append(_OPENING[char])
        elif char in ")]}":
            if stack and stack[-1] == char:
                stack.pop()
            elif not header and not stack:
                return index, commas  # the call's closing parenthesis
            elif not stack:
                return index, commas  # a stray closer ends a with header too
        elif char == ",":
            if len(stack) <= (1 if header else 0):
                commas.append(cursor)
        elif char in "'\"":
            cursor = _string_end(source, index)
        elif char == "#":
            end = source.find("\n", index)
            cursor = len(source) if end < 0 else end
        elif char == "\\":  # a continuation line, or a backslash in odd places
            cursor = index + (3 if source.startswith("\\\r\n", index) else 2)
        elif header and not stack and (char == "\n" or not source.startswith(":=", index)):
            return index, commas  # the header's ':' or its end of line


def _async_before(source: str, pos: int) -> bool:
    """Whether the word before ``pos`` (across spaces and continuation lines) is async."""
    while True:
        while pos > 0 and source[pos - 1] in " \t\f":
            pos -= 1
        if _at(source, pos - 2, "\\\n"):
            pos -= 2
        elif _at(source, pos - 3, "\\\r\n"):
            pos -= 3
        else:
            break
    if pos < 5 or not source.startswith("async", pos - 5):
        return False
    return pos == 5 or not _is_word_char(source[pos - 6])


def _last_for(source: str, window: int, pos: int) -> Optional[tuple[int, bool]]:
    """The last ``for`` word between ``window`` and ``pos``: where it starts (where its
    ``async`` starts, if one is before it in the window) and whether it is ``async
    for``; None if there is none. (What ``re`` finds as the last match of
    ``(\\basync\\s+)?\\bfor\\b`` there, read back from ``pos``: a regular expression
    reads the window from its start, slowly for an optional group.)"""
    end = pos
    while True:
        start = source.rfind("for", window, end)
        if start < 0:
            return None
        end = start + 2  # (the next search ends before this 'for')
        if (start > 0 and _is_word_char(source[start - 1])) or (
            start + 3 < pos and _is_word_char(source[start + 3])
        ):
            continue
        gap = start
        while gap > window and source[gap - 1].isspace():
            gap -= 1
        if (
            gap < start
            and gap - 5 >= window
            and source.startswith("async", gap - 5)
            and (gap == 5 or not _is_word_char(source[gap - 6]))
        ):
            return gap - 5, True
        return start, False


def _line_start(source: str, pos: int) -> int:
    return source.rfind("\n", 0, pos) + 1


def _starts_line(source: str, pos: int) -> bool:
    """Whether only whitespace is between the start of its line and ``pos``: read back
    from ``pos``, not from the line's start, which is far on a long line (a module of
    data on one line has many keywords on it: reading from its start each time took
    time in the square of its length)."""
    while pos > 0 and source[pos - 1] != "\n" and source[pos - 1].isspace():
        pos -= 1
    return pos == 0 or source[pos - 1] == "\n"


def _window_start(source: str, pos: int, lines: int) -> Optional[int]:
    """The start of the line ``lines`` lines before the one of ``pos`` (or of the
    text), if that is within ``_MAX_SCAN`` characters of ``pos``; None if it is not."""
    lowest = max(0, pos - _MAX_SCAN)
    end, start = pos, pos
    for _ in range(lines + 1):
        newline = source.rfind("\n", lowest, end)
        if newline < 0:
            return 0 if lowest == 0 else None
        end, start = newline, newline + 1
    return start


def _for_protocol(source: str, pos: int) -> str:
    """``for`` or ``async for``, for the ``in`` at ``pos``: the nearest ``for`` before it,
    up to a few lines back (a target may span lines); UNSURE if the text cannot tell."""
    before_in = pos
    while before_in > 0 and source[before_in - 1] in " \t\f\r\n\\":
        before_in -= 1
    if before_in > 0 and source[before_in - 1] in ")]":
        # A bracketed target, perhaps over many lines: is there a for before its bracket?
        opener = _opening_bracket(source, before_in - 1)
        if opener is not None:
            word_end = opener
            while word_end > 0 and source[word_end - 1] in " \t\f":
                word_end -= 1
            if _at(source, word_end - 3, "for") and (
                word_end == 3 or not _is_word_char(source[word_end - 4])
            ):
                return _for_at(source, word_end - 3)
    # The text read back is bounded (here and below), or a long line of many `in`s would
    # take time in the square of its length: a for farther back is not looked for.
    window = _window_start(source, pos, 4)
    if window is None:  # a line longer than that: its start is not read
        window = max(0, pos - _MAX_SCAN)
    last = _last_for(source, window, pos)
    if last is None:
        return UNSURE
    start, is_async = last
    line_start = _window_start(source, start, 0)
    if line_start is None or source.find("#", line_start, start) >= 0:
        return UNSURE  # perhaps a comment's "for" (or its line's start too far to read)
    if is_async:
        return k.ASYNC_FOR
    return _for_at(source, start)


def _for_at(source: str, start: int) -> str:
    """The protocol of the ``for`` keyword at ``start``."""
    if _async_before(source, start):
        return k.ASYNC_FOR
    if _starts_line(source, start):
        # The for starts its line: an async may end the line before (in brackets, or
        # before a backslash).
        line_start = _line_start(source, start)  # (after no more than its indentation)
        previous_start = _window_start(source, max(line_start - 1, 0), 0)
        if previous_start is None:
            return UNSURE  # a line before too long to read
        previous = source[previous_start : max(line_start - 1, 0)]
        code = previous.split("#", 1)[0].rstrip(" \t\r\\")
        if code.endswith("async") and (len(code) == 5 or not _is_word_char(code[-6])):
            return UNSURE
    return k.FOR


def _opening_bracket(source: str, closer: int) -> Optional[int]:
    """The position of the bracket that the ``)`` or ``]`` at ``closer`` closes, looking
    back over a target's names, commas and brackets; None if anything else is there."""
    depth = 0
    lowest = max(0, closer - _MAX_SCAN)
    for index in range(closer, lowest - 1, -1):
        char = source[index]
        if char in ")]":
            depth += 1
        elif char in "([":
            depth -= 1
            if depth == 0:
                return index
        elif char in "'\"#{}":
            return None  # a string, a comment or a dict: not a plain target
    return None


def _statement_start(source: str, pos: int) -> bool:
    """Whether the keyword at ``pos`` starts its line, or follows an ``async`` that does
    (a with statement always does)."""
    while pos > 0 and source[pos - 1] in " \t\f":
        pos -= 1
    if pos == 0 or source[pos - 1] == "\n":
        return True
    if not _at(source, pos - 5, "async") or (pos > 5 and source[pos - 6] not in " \t\f\n"):
        return False
    pos -= 5
    while pos > 0 and source[pos - 1] in " \t\f":
        pos -= 1
    return pos == 0 or source[pos - 1] == "\n"


def _depends_calls(source: str, start: int, word_end: int) -> list[IndexedCall]:
    """The indexed calls of ``Depends(``/``Security(`` whose name spans start..word_end."""
    opening = _skip(source, word_end)
    if not source.startswith("(", opening):
        return []
    word_before = _IDENTIFIER_BEFORE.search(source[max(0, start - 100) : start].rstrip())
    if word_before is not None and word_before.group() in ("def", "class"):
        return []  # its definition, not a call
    via = [source[start:word_end]]
    cursor = start
    while len(via) < _MAX_CHAIN:
        dot = cursor
        while dot > 0 and source[dot - 1] in " \t\f\r\n":
            dot -= 1
        if not _at(source, dot - 1, "."):
            break
        end = dot - 1
        while end > 0 and source[end - 1] in " \t\f\r\n":
            end -= 1
        match = _IDENTIFIER_BEFORE.search(source, max(0, end - 100), end)
        if match is None:
            break
        via.append(match.group())
        cursor = match.start()
    via.reverse()
    closing, _ = _scan_region(source, opening + 1, header=False)
    if closing is None:
        return [(DEPENDS_UNSURE, (), tuple(via))]
    found: list[IndexedCall] = []
    # A dependency= keyword wins over the positional argument: take both (and any
    # keyword of that name in a nested call: more than needed, never less).
    for keyword in _DEPENDENCY_KEYWORD.finditer(source, opening, closing):
        chain = _argument_chain(source, _skip(source, keyword.end()))
        if chain is not None:
            found.append((DEPENDS, chain, tuple(via)))
    chain = _argument_chain(source, _skip(source, opening + 1))
    if chain is not None:
        found.append((DEPENDS, chain, tuple(via)))
    return found


def _argument_chain(source: str, pos: int) -> Optional[tuple[str, ...]]:
    """The name or attribute chain that is the whole argument at ``pos`` (parentheses
    allowed around it), or None for anything else (a call, an expression, a keyword)."""
    found = _chain(source, pos)
    if found is None or found[2] or found[1] not in ("", ",", ")"):
        return None  # a keyword argument, or more than a chain
    return found[0]


def _code_end(source: str, start: int, end: int) -> Optional[int]:
    """Where the code of the line ``source[start:end]`` ends: at its comment's ``#``, or
    at ``end``; None if the line's strings leave it in doubt (a triple quote, a string
    not closed on the line)."""
    quote = ""
    index = start
    while index < end:
        char = source[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"":
            if source.startswith(char * 3, index):
                return None
            quote = char
        elif char == "#":
            return index
        index += 1
    return None if quote else end


def _line_back(source: str, index: int, lowest: int) -> Optional[int]:
    """For ``index`` just after a line end (its ``\n`` at ``index - 1``): where the code
    of the line before ends (its comment and continuation backslash left out); None if
    the text cannot tell."""
    index -= 1
    while index > lowest and source[index - 1] == "\r":
        index -= 1
    if index > lowest and source[index - 1] == "\\":
        index -= 1
    newline = source.rfind("\n", lowest, index)
    if newline < 0 and lowest > 0:
        return None  # the line starts too far back to read
    if source.find("#", newline + 1, index) < 0:
        return index
    return _code_end(source, newline + 1, index)


def _back(source: str, pos: int, lowest: int) -> Optional[int]:
    """The position of the last character of code before ``pos`` that is not whitespace,
    a line end, a comment or a continuation backslash; -1 if there is none; None if the
    text cannot tell (``lowest`` reached above the text's start, a line crossed whose
    comment cannot be told from its strings)."""
    index: Optional[int] = pos
    while True:
        assert index is not None
        if index <= lowest:
            return -1 if lowest == 0 else None
        char = source[index - 1]
        if char in " \t\f\r":
            index -= 1
        elif char == "\n":
            index = _line_back(source, index, lowest)
            if index is None:
                return None
        else:
            return index - 1


def _opening_paren(source: str, closer: int, lowest: int) -> Optional[int]:
    """The ``(`` that the ``)`` at ``closer`` closes, read back (strings skipped on their
    line, comments of the lines before left out) and checked forward; None if the text
    cannot tell."""
    depth = 0
    index = closer
    while index >= lowest:
        char = source[index]
        if char in ")]}":
            depth += 1
        elif char in "([{":
            depth -= 1
            if depth == 0:
                break
        elif char in "'\"":
            line_start = source.rfind("\n", lowest, index) + 1
            index = source.rfind(char, line_start, index)
            if index < 0:
                return None
        elif char == "#":
            return None
        elif char == "\n":
            end = _line_back(source, index + 1, lowest)
            if end is None:
                return None
            index = end - 1  # the last character of that line's code
            continue
        index -= 1
    else:
        return None
    if source[index] != "(" or _scan_region(source, index + 1, header=False)[0] != closer:
        return None
    return index


_NOTHING = "none"


def _a_call_closes(source: str, closer: int, lowest: int) -> bool:
    """Whether the ``)`` at ``closer`` surely ends a call of something (``f(a)``,
    ``x[0](a)``, ``f()(a)``), not parentheses around an expression."""
    opening = _opening_paren(source, closer, lowest)
    if opening is None:
        return False
    before = _back(source, opening, lowest)
    if before is None or before < 0:
        return False
    char = source[before]
    if char in ")]":
        return True
    if not _is_word_char(char):
        return False
    match = _IDENTIFIER_BEFORE.search(source, max(lowest, before - 100), before + 1)
    return match is not None and match.group() not in _KEYWORDS


def _attribute_base(source: str, dot: int) -> tuple[str, Union[str, tuple[str, ...], None]]:
    """What the attribute whose ``.`` is at ``dot`` is taken on: ("name", "db") for
    ``db.execute``, (ATTRIBUTE, chain) for ``get_db().execute``, (UNSURE, None) if the
    text cannot tell, (_NOTHING, None) for anything else (``self.db.execute``,
    ``x[0].execute``)."""
    lowest = max(0, dot - _MAX_SCAN)
    end = _back(source, dot, lowest)
    for _ in range(_MAX_CHAIN):  # around parentheses: `(get_db()).execute`, `(db).execute`
        if end is None:
            return UNSURE, None
        if end < 0:
            return _NOTHING, None
        char = source[end]
        if _is_word_char(char):
            match = _IDENTIFIER_BEFORE.search(source, max(lowest, end - 100), end + 1)
            if match is None or match.group() in _KEYWORDS:
                return _NOTHING, None
            before = _back(source, match.start(), lowest)
            if before is not None and before >= 0 and source[before] == ".":
                return _NOTHING, None  # an attribute of an attribute
            return "name", match.group()  # (or perhaps one: the name is taken anyway)
        if char != ")":
            return _NOTHING, None
        opening = _opening_paren(source, end, lowest)
        if opening is None:
            return UNSURE, None
        called = _back(source, opening, lowest)
        if called is None:
            return UNSURE, None
        if called >= 0 and source[called] == ")":
            # `f()().execute`, `x.f(a)().execute`: no chain is called; `(get_db)()`: one is
            return (_NOTHING, None) if _a_call_closes(source, called, lowest) else (UNSURE, None)
        if called >= 0 and _is_word_char(source[called]):
            match = _IDENTIFIER_BEFORE.search(source, max(lowest, called - 100), called + 1)
            if match is not None and match.group() not in _KEYWORDS:
                return _called_before(source, match, lowest)
        end = _back(source, end, lowest)  # a parenthesized expression: what it ends with
    return UNSURE, None


def _called_before(
    source: str, match: re.Match[str], lowest: int
) -> tuple[str, Optional[tuple[str, ...]]]:
    """The chain ending with the name ``match`` found, read back (``deps.get_db``)."""
    parts = [match.group()]
    cursor = match.start()
    while len(parts) <= _MAX_CHAIN:
        dot = _back(source, cursor, lowest)
        if dot is None:
            return UNSURE, None
        if dot < 0 or source[dot] != ".":
            parts.reverse()
            return ATTRIBUTE, tuple(parts)
        end = _back(source, dot, lowest)
        if end is None:
            return UNSURE, None
        if end >= 0 and source[end] == ")":
            # `x.f(a).get_db()`: the result of a call; `(deps).get_db()`: a chain
            return (_NOTHING, None) if _a_call_closes(source, end, lowest) else (UNSURE, None)
        if end < 0 or not _is_word_char(source[end]):
            return _NOTHING, None  # `x[0].get_db()`: no chain
        found = _IDENTIFIER_BEFORE.search(source, max(lowest, end - 100), end + 1)
        if found is None:
            return _NOTHING, None
        parts.append(found.group())
        cursor = found.start()
    return _NOTHING, None  # longer than the parser follows


def _attribute_calls(source: str) -> list[IndexedCall]:
    """For PG103: the calls whose result a session attribute may be taken on, directly
    (``get_db().execute``) or through a name it was assigned to (``db = get_db()``, then
    ``db.execute``): a superset of what the parser finds."""
    found: list[IndexedCall] = []
    owners: set[str] = set()
    for match in _SESSION_ATTRIBUTE.finditer(source):
        what, base = _attribute_base(source, match.start())
        if what == UNSURE:
            return [_PARSE_ALWAYS]
        if what == ATTRIBUTE:
            assert isinstance(base, tuple)
            found.append((ATTRIBUTE, base, ()))
        elif what == "name":
            assert isinstance(base, str)
            owners.add(base)
    found.extend((ATTRIBUTE, chain, ()) for chain in _assigned_calls(source, owners))
    return found


def _assigned_calls(source: str, names: set[str]) -> list[tuple[str, ...]]:
    """The chains called in what may be assignments to ``names`` (``db = get_db()``,
    ``db: AsyncSession = deps.get_db()``): a superset of the parser's."""
    found: list[tuple[str, ...]] = []
    for match in (
        match
        for name in sorted(names)
        for match in re.finditer(re.escape(name) + _ASSIGNED, source)
    ):
        start = match.start()
        if start and (_is_word_char(source[start - 1]) or source[start - 1] == "."):
            continue  # the end of another name, or an attribute
        ends = [match.end()]
        if match.group(1) is not None:
            # An annotation with a `=` in it (`Annotated[T, Field(default=1)]`): any `=`
            # further on the line may be the assignment's.
            line_end = source.find("\n", match.end())
            line = source[match.end() : line_end if line_end >= 0 else len(source)]
            ends.extend(
                match.end() + position + 1
                for position, char in enumerate(line)
                if char == "="
                and line[position + 1 : position + 2] != "="
                and (position == 0 or line[position - 1] not in "=<>!")
            )
        for end in ends:
            chain = _called_at(source, end)
            if chain is not None:
                found.append(chain)
    return found


def _entered_name(source: str, pos: int) -> Optional[str]:
    """The name a with item starting at ``pos`` is, if it is one alone (`cm as db`,
    `cm:`, `(cm)`), not a call or an attribute (nor prose after a "with")."""
    pos = _skip(source, pos)
    while source.startswith("(", pos):
        pos = _skip(source, pos + 1)
    match = _IDENTIFIER.match(source, pos)
    if match is None or match.group() in _KEYWORDS:
        return None
    after = _skip(source, match.end())
    if source[after : after + 1] in (":", ",", ")") or (
        source.startswith("as", after) and not _is_word_char(source[after + 2 : after + 3])
    ):
        return match.group()
    return None


def index_calls(source: str) -> list[IndexedCall]:
    """Every call in ``source`` that might be a use, as the text shows it (a superset of
    what :func:`parse_uses` finds, strings and comments included)."""
    found: dict[IndexedCall, None] = {}
    entered: set[str] = set()  # the names a with statement enters (`async with cm:`)
    for match in _KEYWORD.finditer(source):
        start = match.start()
        if start and _is_word_char(source[start - 1]):
            continue
        word = match.group()
        end = match.end()
        if word in _DEPENDS_NAMES:
            for depends in _depends_calls(source, start, end):
                found[depends] = None
            continue
        if source[start - 1 : start] == ".":
            continue  # an attribute of that name
        if word == "with":
            if not _statement_start(source, start):
                continue  # not a with statement ("with" in text, or an identifier)
            protocol = k.ASYNC_WITH if _async_before(source, start) else k.WITH
            header_end, commas = _scan_region(source, end, header=True)
            if header_end is None:
                found[_PARSE_ALWAYS] = None
                continue
            for item in (end, *commas):
                chain = _called_at(source, item)
                if chain is not None and chain[0] != "await":
                    found[(protocol, chain, ())] = None
                elif chain is None:
                    name = _entered_name(source, item)
                    if name is not None:
                        entered.add(name)
            continue
        chain = _called_at(source, end)
        if chain is None:
            continue
        protocol = k.AWAIT if word == "await" else _for_protocol(source, start)
        found[(protocol, chain, ())] = None
    for call in _attribute_calls(source):
        found[call] = None
    if entered:  # PG107, `cm = get_db()` entered twice: the calls assigned to those names
        for chain in _assigned_calls(source, entered):
            found[(REENTER, chain, ())] = None
    return list(found)
