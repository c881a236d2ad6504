"""The one exception the library raises for bad input.

Every message names the file (and the line or example id where there is one), what was expected and what
was found, e.g. ``dynamics/epoch_3.jsonl line 1042: logits has 3 values, expected 4 (K from epoch 0)``.
"""


class LogError(ValueError):
    """A training-dynamics log, examples file or option that cannot be used as given."""
