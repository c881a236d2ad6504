"""Train with DistributedDataParallel on several processes and record training dynamics (README).

    torchrun --nproc_per_node=2 examples/ddp_train.py --out runs/trec-ddp

Each process trains on its DistributedSampler share of TREC's training split (from sample_logs/) and logs
its own part of every epoch; the recorder reads its rank and world size from torch.distributed. The
sampler's default pads the last batch by repeating a few examples; those repeats are read once.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone, nothing installed
from cartography_core.record import DynamicsRecorder  # noqa: E402
from cartography_core.record.torch_loop import IndexedDataset  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default="sample_logs/trec/examples.parquet", help="id, text, label, label_name, split")
parser.add_argument("--out", default="runs/trec-ddp")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--limit", type=int, help="use the first N training rows only")
args = parser.parse_args()

dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
torch.manual_seed(0)  # the same initial weights on every rank
df = pd.read_parquet(args.data).query("split == 'train'").head(args.limit)
names = df.drop_duplicates("label").sort_values("label")["label_name"].tolist()
x = torch.tensor(TfidfVectorizer(max_features=2000).fit_transform(df["text"]).toarray(), dtype=torch.float32)
data = IndexedDataset(TensorDataset(x, torch.tensor(df["label"].to_numpy())), ids=df["id"].tolist())
sampler = DistributedSampler(data, shuffle=True, seed=0)  # drop_last=False: pads with repeated examples
loader = DataLoader(data, batch_size=32, sampler=sampler)
model = DistributedDataParallel(torch.nn.Linear(x.shape[1], len(names)))
opt = torch.optim.Adam(model.parameters(), lr=5e-3)

rec = DynamicsRecorder(args.out, label_names=names, examples=df[["id", "text", "label"]])
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    for ids, (xb, yb) in loader:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(ids, logits, yb)
    rec.end_epoch()
dist.destroy_process_group()
