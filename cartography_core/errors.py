"""The one exception the library raises for bad input.

Every message names the file (and the line or example id where there is one), what was expected and what
was found, e.g. ``dynamics/epoch_3.jsonl line 1042: logits has 3 values, expected 4 (K from epoch 0)``.
"""


def show_id(example_id) -> str:
    """An example id as the user wrote it, for messages: 17 or 'q-17' (not np.int64(17))."""
    return repr(example_id.item() if hasattr(example_id, "item") else example_id)


def short(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis): a message quotes at most a fragment of a file."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LogError(ValueError):
    """A training-dynamics log, examples file or option that cannot be used as given."""
