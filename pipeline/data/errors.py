"""The error every data loader raises for bad input data: one line naming the file, where in it, and the fix.

The CLI prints it and exits with status 2, as it does for a bad recipe (a stage's exception reaches `pipeline.cli`
unchanged through the runner). It is a ValueError, so library callers that caught ValueError still do.
"""

from __future__ import annotations


class DataError(ValueError):
    """`file: where: problem. Fix: ...` (where: 'line 3', 'column problem', '(file)')."""

    def __init__(self, file: str, where: str, problem: str, fix: str = ""):
        self.file, self.where, self.problem, self.fix = str(file), where, problem, fix
        super().__init__(f"{file}: {where}: {problem}" + (f". Fix: {fix}" if fix else ""))
