"""The review loop: annotators' verdicts (``store``), what they decide (``consensus``), the corrected dataset
and Label Studio files (``export``), and signed invite links (``invite``)."""

from .consensus import OUTCOMES, Agreement, agreement, disagreements, outcome_codes, resolve, votes
from .export import corrected_dataset, ls_config, ls_import, ls_tasks
from .invite import invite_link, load_secret, sign, token_ok
from .store import VERDICTS, ReviewStore, Verdict, check_name, check_verdict, dataset_name, default_db_path

__all__ = [
    "OUTCOMES",
    "VERDICTS",
    "Agreement",
    "ReviewStore",
    "Verdict",
    "agreement",
    "check_name",
    "check_verdict",
    "corrected_dataset",
    "dataset_name",
    "default_db_path",
    "disagreements",
    "invite_link",
    "load_secret",
    "outcome_codes",
    "ls_config",
    "ls_import",
    "ls_tasks",
    "resolve",
    "sign",
    "token_ok",
    "votes",
]
