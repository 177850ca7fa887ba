"""Prompt templates: the one syntax every stage that builds a prompt from a row uses (generate, grpo, evaluate).

A template names columns of the row in braces: `{problem}`. Only `{identifier}` is a field, so LaTeX such as
`\\boxed{}` needs no escaping; `{{` and `}}` write a literal brace (for `\\frac{{a}}{{b}}`, where `a` would otherwise
be read as a column). A None value renders as the empty string.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_fields(template: str) -> list[str]:
    """The column names a template reads, in order, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in _FIELD.finditer(template) if m.group(1)))


def fill_template(template: str, row: dict) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1) is None:
            return match.group(0)[0]  # {{ -> {, }} -> }
        value = row[match.group(1)]
        return "" if value is None else str(value)

    return _FIELD.sub(replace, template)


def check_template(template: str, columns: list[str]) -> None:
    """ValueError naming the first column the template reads that `columns` lacks."""
    missing = [f for f in template_fields(template) if f not in columns]
    if missing:
        raise ValueError(f"prompt_template names column '{missing[0]}', which the data does not have; columns: "
                         f"{', '.join(columns)}. Use one of them, or write a literal brace as {{{{ }}}}")
