"""Markdown pages whose mathematics is written in Unicode, rendered as written.

``docs/theory.md`` writes formulas as plain text: ``‖Z‖_*``, ``‖·‖_F``, ``q*``, ``W_{L−1}``. In
Markdown an ``_`` or ``*`` next to punctuation may open or close emphasis, so pairs of them across
a formula turn part of it into italics and drop the characters. This extension escapes, in the
pages named by the configuration value ``unicode_math_documents`` and only while Sphinx reads
them (the file is unchanged):

- every ``_`` that is not between two letters or digits (those never delimit emphasis);
- every single ``*`` except the ones that delimit an emphasis such as ``*Sketch*``: an opening
  ``*`` after a space, an opening bracket or the start of a line and before a letter, and the
  next single ``*``, which closes it. Double ``**`` (bold) is kept.

Code spans and fenced code blocks are left alone. :func:`escape_math_markup` is the rewrite.
"""

from __future__ import annotations

import re
from typing import Any

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_OPENERS = " \t\n([{\"'"


def _escape_segment(text: str) -> str:
    out: list[str] = []
    index = 0
    emphasis_open = False
    length = len(text)
    while index < length:
        char = text[index]
        if char == "_":
            before = text[index - 1] if index else " "
            after = text[index + 1] if index + 1 < length else " "
            out.append("_" if before.isalnum() and after.isalnum() else "\\_")
            index += 1
        elif char == "*":
            run = 1
            while index + run < length and text[index + run] == "*":
                run += 1
            if run >= 2:
                out.append(text[index:index + run])
            else:
                before = text[index - 1] if index else "\n"
                after = text[index + 1] if index + 1 < length else " "
                if emphasis_open:
                    out.append("*")
                    emphasis_open = False
                elif before in _OPENERS and after.isalpha():
                    out.append("*")
                    emphasis_open = True
                else:
                    out.append("\\*")
            index += run
        elif char == "\\" and index + 1 < length:
            out.append(text[index:index + 2])  # an existing escape stays as it is
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _escape_block(text: str) -> str:
    """Escape outside the code spans of a block of Markdown lines, paragraph by paragraph."""
    return "\n\n".join(_escape_paragraph(part) for part in text.split("\n\n"))


def _escape_paragraph(text: str) -> str:
    pieces, position = [], 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(_escape_segment(text[position:match.start()]))
        pieces.append(match.group(0))
        position = match.end()
    pieces.append(_escape_segment(text[position:]))
    return "".join(pieces)


def escape_math_markup(text: str) -> str:
    """Return ``text`` with the ``_`` and ``*`` of its formulas escaped (see the module docstring)."""
    lines = text.split("\n")
    result: list[str] = []
    block: list[str] = []
    fence: str | None = None
    for line in lines:
        marker = _FENCE.match(line.lstrip())
        if fence is None and marker:
            if block:
                result.append(_escape_block("\n".join(block)))
                block = []
            fence = marker.group(1)
            result.append(line)
        elif fence is not None:
            result.append(line)
            if line.lstrip().startswith(fence):
                fence = None
        elif line.startswith("#"):  # a heading is a block of its own
            if block:
                result.append(_escape_block("\n".join(block)))
                block = []
            result.append(_escape_block(line))
        else:
            block.append(line)
    if block:
        result.append(_escape_block("\n".join(block)))
    return "\n".join(result)


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    if docname in app.config.unicode_math_documents:
        source[0] = escape_math_markup(source[0])


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value("unicode_math_documents", [], "env")
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
