"""Record a plain PyTorch loop: wrap the dataset so each batch carries its examples' own ids.

    from cartography_core.record import DynamicsRecorder
    from cartography_core.record.torch_loop import IndexedDataset

    loader = DataLoader(IndexedDataset(train_set, ids=df["id"].tolist()), batch_size=32, shuffle=True)
    rec = DynamicsRecorder("runs/my-run", label_names=names, examples=df[["id", "text", "label"]])
    for epoch in range(epochs):
        for ids, (x, y) in loader:
            logits = model(x); loss = F.cross_entropy(logits, y); opt.zero_grad(); loss.backward(); opt.step()
            rec.log(ids, logits, y)
        rec.end_epoch()

``ids[i]`` is the id of ``train_set[i]`` in the dataset it came from (ints or strings): positions in a split
are not the dataset's ids, and texts looked up by them would be other rows' texts.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import LogError
from ._optional import require

torch_data = require("torch.utils.data", __name__)


class IndexedDataset(torch_data.Dataset):
    """``dataset[i]`` becomes ``(ids[i], dataset[i])``; ``len`` is unchanged."""

    def __init__(self, dataset, ids: Sequence):
        if ids is None:
            raise LogError(
                "IndexedDataset needs ids: the dataset's own id of each row (use ids=range(len(dataset)) only when "
                "the row numbers are the ids your examples file uses)"
            )
        if len(ids) != len(dataset):
            raise LogError(f"ids has {len(ids)} entries, the dataset {len(dataset)}")
        if hasattr(ids, "iloc"):  # a pandas Series: by position, as the dataset's rows, never by its index labels
            ids = ids.to_numpy()
        self.dataset, self.ids = dataset, ids

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.ids[i], self.dataset[i]
