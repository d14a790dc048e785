"""Errors and problem reports that a planner can act on, in Chinese and English.

Every reader raises :class:`InputError` (one problem, stops the run) or collects
:class:`Problem` objects (``covplan validate`` prints them all). Both name the file, the row and the
field where known, and say what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in the inputs.

    Parameters
    ----------
    zh, en : str
        The message in Chinese and in English. Each says what is wrong and what to do.
    file : str or None
        The file the problem is in.
    row : int or None
        For tables, the row number Excel/WPS shows (the first line of the file is row 1, so the
        header is usually row 1 and the first data row 2; title and empty rows count), for YAML
        files the line, for vector layers the 1-based feature number.
    field : str or None
        Column, YAML key or layer name.
    severity : {"error", "warning"}
        Errors make ``covplan validate`` exit 1 and stop every computing command; warnings are
        printed by every command and recorded in its outputs (``summary.json`` ``warnings``).
    code : str or None
        A stable machine key for the kind of problem (e.g. ``"facilities_outside"``), for scripts
        and tests; the texts may change, the code does not.
    """

    zh: str
    en: str
    file: str | None = None
    row: int | None = None
    field: str | None = None
    severity: str = "error"
    code: str | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        """The problem as a JSON-ready mapping (``summary.json`` ``warnings``)."""
        return {
            "code": self.code, "severity": self.severity, "zh": self.zh, "en": self.en,
            "file": self.file, "row": self.row, "field": self.field,
        }

    def where(self) -> str:
        """Return ``file, row N, field F`` for the parts that are known."""
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.row is not None:
            parts.append(f"row {self.row} / 第{self.row}行")
        if self.field:
            parts.append(f"field 字段 '{self.field}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        head = f"[{self.severity}] {where}: " if where else f"[{self.severity}] "
        tail = f" ({self.code})" if self.code else ""
        return f"{head}{self.zh} / {self.en}{tail}"


class InputError(ValueError):
    """A bad input that stops the run; carries a bilingual :class:`Problem`."""

    def __init__(
        self,
        zh: str,
        en: str,
        file: str | os.PathLike[str] | None = None,
        row: int | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        self.problem = Problem(
            zh=zh, en=en, file=str(file) if file is not None else None, row=row, field=field,
            code=code,
        )
        super().__init__(str(self.problem))

    @classmethod
    def from_problem(cls, problem: Problem) -> "InputError":
        """Wrap an existing problem."""
        return cls(problem.zh, problem.en, problem.file, problem.row, problem.field, problem.code)
