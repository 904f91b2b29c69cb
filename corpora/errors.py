"""The one error type of the corpus builder.

Every failure a user can fix (a missing file, a dead URL, a hostile archive, an existing output folder)
is raised as `CorpusError` with a one-line message that names the input and says what to do;
`python -m corpora ...` prints that line to stderr and exits with status 2:

    python -m corpora --source text no/such/folder --output_dir data/x   # error: no/such/folder does not exist; ...
"""


class CorpusError(ValueError):
    """A bad input or a refused operation; `str(error)` is one line naming the input and the fix."""

    def __init__(self, message: str):
        # One line only: the CLI prints it verbatim, and a multi-line message reads like a traceback.
        super().__init__(" ".join(str(message).split()))
