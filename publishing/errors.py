"""The one-line errors of publishing: PushError (nothing was sent) and UploadError (the Hub failed)."""


class PushError(ValueError):
    """A bad argument or an unusable model folder, found before anything is uploaded; one line."""


class UploadError(RuntimeError):
    """The Hub refused or failed the upload; one line saying whether retrying is safe."""
