"""The error a user fixes by changing an argument or a recipe, shared by the modules of `training`."""


class ArgumentsError(ValueError):
    """A bad argument or recipe: the message is one line naming it and what to do."""
