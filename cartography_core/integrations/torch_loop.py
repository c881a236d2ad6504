"""Record a plain PyTorch training loop: wrap the dataset so each batch carries its example ids.

    from cartography_core.recorder import DynamicsRecorder
    from cartography_core.integrations.torch_loop import IndexedDataset

    loader = DataLoader(IndexedDataset(train_set), batch_size=32, shuffle=True)
    rec = DynamicsRecorder("runs/my-run", label_names=names)
    for epoch in range(epochs):
        for ids, (x, y) in loader:
            logits = model(x); loss = F.cross_entropy(logits, y); opt.zero_grad(); loss.backward(); opt.step()
            rec.log(ids, logits, y)
        rec.end_epoch()

The id of an example is its index in ``train_set`` unless ``ids`` gives others (ints or strings).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._optional import require

torch_data = require("torch.utils.data", "cartography_core.integrations.torch_loop")


class IndexedDataset(torch_data.Dataset):
    """``dataset[i]`` becomes ``(id_i, dataset[i])``; ``len`` is unchanged."""

    def __init__(self, dataset, ids: Sequence | None = None):
        if ids is not None and len(ids) != len(dataset):
            raise ValueError(f"ids has {len(ids)} entries, the dataset {len(dataset)}")
        self.dataset, self.ids = dataset, ids

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return (i if self.ids is None else self.ids[i]), self.dataset[i]
