"""`curate report`: one self-contained HTML page that shows what a run kept, dropped and why.

    curate report runs/demo --out runs/demo/report.html

Reads what the stages left in the run folder (see ``curate.runs.evidence``): curated.jsonl,
rejected.jsonl (rows with ``reject: {stage, reason, detail}``, plus ``dup_of``/``cluster_id``
for near-duplicates), generated.jsonl, errors.jsonl, manifest.json, filter_config.yaml,
filter_report.json and compare/*/results.json with their curve images. The page has the
funnel, the reject reasons with example rows, length and score histograms (kept vs
rejected), near-duplicate clusters with their members, and the compare curves.

Everything is inline (figures are base64 PNGs drawn with matplotlib's object API, CSS is
in the page, there is no script), so the file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.records.jsonl import atomic_writer
from curate.runs.evidence import (
    CompareRun,
    Funnel,
    RecordStats,
    RunFiles,
    TrainRun,
    compute_funnel,
    find_run_files,
    generation_rejects,
    iter_rows,
    reject_info,
    require_dir,
    summarize,
    text_of,
)
from curate.runs.redact import redact_text

TEMPLATE = Path(__file__).with_name("report.html.jinja")
EXAMPLES_PER_REASON = 3
MAX_CLUSTERS = 12
MAX_MEMBERS = 8
PREVIEW = 280
# One colour per role in every figure, so kept/rejected read the same everywhere.
KEPT, REJECTED, NEUTRAL, ACCENT = "#2f7d5b", "#c4553d", "#6b7a8f", "#3a6fb0"
STAGE_COLOURS = ("#c4553d", "#d98c2b", "#8a5fb0", "#3a6fb0", "#5a9e9e", "#9c6644")


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    png: str  # base64
    width: int | None = None  # CSS pixels; the PNG has twice as many, so text stays sharp

    @property
    def src(self) -> str:
        return f"data:image/png;base64,{self.png}"


@dataclass
class Example:
    id: str
    prompt: str
    response: str
    detail: str


@dataclass
class ReasonBlock:
    stage: str
    reason: str
    count: int
    examples: list[Example]


@dataclass
class Cluster:
    key: str
    representative: Example | None
    members: list[Example]
    size: int


@dataclass
class ScoreBlock:
    """One score of a `curate score` output: every value, and the rows at both ends."""

    name: str
    source: str
    values: list[float]
    top: list[tuple[float, Example]]
    bottom: list[tuple[float, Example]]


@dataclass
class ReportData:
    run: Path
    files: RunFiles
    kept: RecordStats
    rejected: RecordStats
    funnel: Funnel | None
    reasons: list[ReasonBlock]
    clusters: list[Cluster]
    cluster_count: int
    errors: list[tuple[str, int, list[str]]]
    figures: dict[str, Figure] = field(default_factory=dict)
    scoring: list[ScoreBlock] = field(default_factory=list)  # `curate score` outputs in the folder
    tokens: TokenLengths | None = None  # kept rows in tokens of the trained model's chat template


def _preview(text: str, limit: int = PREVIEW) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def _detail_text(detail: Any) -> str:
    if detail is None:
        return ""
    if isinstance(detail, (Mapping, list)):
        return _preview(json.dumps(detail, ensure_ascii=False), 200)
    return _preview(str(detail), 200)


def _example(row: Mapping[str, Any], detail: Any = None) -> Example:
    return Example(str(row.get("id", "")), _preview(text_of(row, "user")), _preview(text_of(row, "assistant")),
                   _detail_text(detail))


def collect(run_dir: str | os.PathLike[str]) -> ReportData:
    """Read the run folder once: counts, examples, clusters and the numbers for the figures."""
    run = require_dir(run_dir).resolve()
    files = find_run_files(run)
    rejected = RecordStats(max_examples=0)
    reject_counts: Counter = Counter()
    examples: dict[tuple[str, str], list[Example]] = {}
    clusters: dict[str, list[Example]] = {}
    cluster_rep: dict[str, str] = {}
    cluster_sizes: Counter = Counter()
    for row in iter_rows(files.rejected):
        info = reject_info(row)
        key = (str(info["stage"]), str(info["reason"]))
        reject_counts[key] += 1
        rejected.add(row)
        shown = examples.setdefault(key, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(_example(row, info.get("detail")))
        group = info.get("dup_of") or info.get("cluster_id")
        if group is not None:
            group = str(group)
            cluster_sizes[group] += 1
            members = clusters.setdefault(group, [])
            if len(members) < MAX_MEMBERS:  # a big run can drop tens of thousands: keep only what is shown
                members.append(_example(row, info.get("detail")))
            if info.get("dup_of"):
                cluster_rep[group] = str(info["dup_of"])
    kept = RecordStats(max_examples=0)
    wanted = set(cluster_rep.values())
    representatives: dict[str, Example] = {}
    tokens = TokenLengths.for_run(files)
    for row in iter_rows(files.curated):
        kept.add(row)
        if tokens is not None:
            tokens.add(row)
        if row.get("id") in wanted:
            representatives[str(row["id"])] = _example(row)
    funnel = compute_funnel(files, kept=kept.count, reject_counts=reject_counts) if files.curated else None
    reasons = [ReasonBlock(stage, reason, count, examples[(stage, reason)])
               for (stage, reason), count in reject_counts.most_common()]
    shown_clusters = [
        Cluster(key, representatives.get(cluster_rep.get(key, "")), clusters[key], size)
        for key, size in cluster_sizes.most_common(MAX_CLUSTERS)
    ]
    return ReportData(run, files, kept, rejected, funnel, reasons, shown_clusters, len(clusters),
                      _collect_errors(files), scoring=collect_scores(run), tokens=tokens)


SCORE_EXAMPLES = 3


def collect_scores(run: Path) -> list[ScoreBlock]:
    """Each score in each `curate score` output of the folder (found by its score_report.json)."""
    from curate.runs.names import SCORE_REPORT, prefix_of

    blocks = []
    for report in sorted(run.glob(f"*{SCORE_REPORT}")):
        prefix = prefix_of(report, SCORE_REPORT)
        scored = report.with_name(f"{prefix}jsonl" if prefix else "scored.jsonl") if prefix is not None else None
        if scored is None or not scored.is_file():
            continue
        try:
            names = list(json.loads(report.read_text(encoding="utf-8")).get("distributions") or {})
        except (OSError, ValueError, AttributeError):
            continue
        values: dict[str, list[tuple[float, int]]] = {name: [] for name in names}
        for index, row in enumerate(iter_rows(scored)):
            scores = row.get("scores") if isinstance(row.get("scores"), Mapping) else {}
            for name in names:
                value = scores.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[name].append((float(value), index))
        wanted: dict[str, list[tuple[float, int]]] = {}
        for name, pairs in values.items():
            ranked = sorted(pairs, key=lambda p: (-p[0], p[1]))
            wanted[f"{name}:top"] = ranked[:SCORE_EXAMPLES]
            wanted[f"{name}:bottom"] = ranked[::-1][:SCORE_EXAMPLES] if len(ranked) > SCORE_EXAMPLES else []
        needed = {index for pairs in wanted.values() for _, index in pairs}
        examples = {i: _example(row) for i, row in enumerate(iter_rows(scored)) if i in needed}
        for name, pairs in values.items():
            blocks.append(ScoreBlock(name, scored.name, [v for v, _ in pairs],
                                     [(v, examples[i]) for v, i in wanted[f"{name}:top"]],
                                     [(v, examples[i]) for v, i in wanted[f"{name}:bottom"]]))
    return blocks


def _collect_errors(files: RunFiles) -> list[tuple[str, int, list[str]]]:
    """(reason, count, example messages) of generation failures in errors.jsonl."""
    counts: Counter = Counter()
    shown: dict[str, list[str]] = {}
    for row in iter_rows(files.errors):  # generate's rows: {batch, stage, request_id, error, attempts, ...}
        message = str(row.get("error") or "unknown error")
        reason = _preview(message.splitlines()[0].split(": ", 1)[0], 80)  # "HTTP 500: ..." -> "HTTP 500"
        counts[reason] += 1
        if len(shown.setdefault(reason, [])) < 2 and message:
            shown[reason].append(_preview(message, 200))
    return [(reason, count, shown.get(reason, [])) for reason, count in counts.most_common()]


# -- figures ------------------------------------------------------------------------------

def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color("#9aa5b1")
    ax.tick_params(colors="#3d4852", labelsize=9)
    ax.grid(axis="x", color="#e6e9ee", linewidth=0.8)
    ax.set_axisbelow(True)


DPI = 96  # CSS pixels per inch: figures are drawn at 2x this and shown at 1x


def _encode(fig: Any) -> tuple[str, int]:
    """(base64 PNG, width in CSS pixels) of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI * 2)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), round(fig.get_figwidth() * DPI)


def funnel_figure(funnel: Funnel) -> tuple[str, int]:
    rows = funnel.rows()
    labels = [label for label, _ in rows][::-1]
    values = [value for _, value in rows][::-1]
    fig = _new_figure(7.5, 0.55 * len(rows) + 0.9)
    ax = fig.add_subplot()
    colours = [KEPT] + [NEUTRAL] * (len(rows) - 2) + [ACCENT]
    bars = ax.barh(labels, values, color=colours, height=0.62)
    top = max(values) or 1
    shares = [f"{value / top:.0%}" if funnel.start else "" for value in values]
    _label_bars(ax, bars, [f"{value:,}  ({share})" for value, share in zip(values, shares, strict=True)], top)
    ax.set_xlim(0, top * 1.22)
    ax.set_xlabel("rows remaining", fontsize=9, color="#3d4852")
    _integer_x(ax)
    _style(ax)
    return _encode(fig)


def _integer_x(ax: Any) -> None:
    """Counts get whole-number ticks (a 9-row funnel must not show 2.5 rows)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _label_bars(ax: Any, bars: Any, labels: list[str], top: float) -> None:
    """Write each bar's label just past its end."""
    for bar, label in zip(bars, labels, strict=True):
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, label,
                va="center", fontsize=9, color="#1f2933")


def reasons_figure(reasons: list[ReasonBlock], stage_order: list[str]) -> tuple[str, int]:
    shown = reasons[:15][::-1]
    stages = list(dict.fromkeys([*stage_order, *(block.stage for block in reasons)]))
    colour = {stage: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, stage in enumerate(stages)}
    fig = _new_figure(7.5, 0.42 * len(shown) + 1.0)
    ax = fig.add_subplot()
    bars = ax.barh([f"{b.stage}: {b.reason}" for b in shown], [b.count for b in shown],
                   color=[colour[b.stage] for b in shown], height=0.62)
    top = max(b.count for b in shown)
    _label_bars(ax, bars, [f"{block.count:,}" for block in shown], top)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("rows rejected", fontsize=9, color="#3d4852")
    _integer_x(ax)
    _style(ax)
    return _encode(fig)


def _bins(values: Any) -> tuple[Any, float | None]:
    """Histogram bins: one per integer for small integer ranges; the top 1% folded into the last bin."""
    import numpy as np

    low, high = float(values.min()), float(values.max())
    clip = None
    if values.size >= 50:
        p99 = float(np.quantile(values, 0.99))
        if high > 2 * p99 > low:
            clip, high = p99, p99
    integer = bool(np.all(np.mod(values, 1) == 0))
    if integer and high - low <= 40 and values.size >= 2 * (high - low):  # enough rows to fill a bin per value
        return np.arange(low - 0.5, high + 1.5), clip
    count = int(min(30, max(8, 2 * np.sqrt(values.size))))  # few rows: wider bins, not a comb
    return np.linspace(low, high if high > low else low + 1, count + 1), clip


def _histogram(ax: Any, kept: list[float], rejected: list[float], title: str) -> None:
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(kept + rejected, dtype=float)
    if values.size == 0:
        ax.set_visible(False)
        return
    bins, clip = _bins(values)

    def folded(data: list[float]) -> Any:
        array = np.asarray(data, dtype=float)
        return np.minimum(array, clip) if clip is not None else array

    if kept:
        ax.hist(folded(kept), bins=bins, color=KEPT, alpha=0.8, edgecolor="white", linewidth=0.6,
                label=f"kept ({len(kept):,})")
    if rejected:
        ax.hist(folded(rejected), bins=bins, color=REJECTED, alpha=0.55, edgecolor="white", linewidth=0.6,
                label=f"rejected ({len(rejected):,})")
    summary = summarize(kept)
    if summary:
        ax.axvline(min(summary["median"], clip or summary["median"]), color="#1f2933", linewidth=1, linestyle="--")
        title += f" · kept median {summary['median']:.3g}"
    if clip is not None:
        title += f" (last bin: ≥ {clip:.3g})"
    ax.set_title(title, fontsize=10, color="#1f2933", loc="left")
    ax.legend(fontsize=8, framealpha=0.9, edgecolor="none", loc="best")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if bool(np.all(np.mod(values, 1) == 0)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _style(ax)
    ax.grid(axis="y", color="#e6e9ee", linewidth=0.8)


def lengths_figure(kept: RecordStats, rejected: RecordStats) -> tuple[str, int]:
    fig = _new_figure(9.5, 3.2)
    left, right = fig.subplots(1, 2)
    _histogram(left, kept.prompt_words, rejected.prompt_words, "prompt length (words)")
    _histogram(right, kept.response_words, rejected.response_words, "response length (words)")
    return _encode(fig)


def scores_figure(kept: RecordStats, rejected: RecordStats) -> tuple[str, int] | None:
    names = sorted(set(kept.scores) | set(rejected.scores))
    if not names:
        return None
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    fig = _new_figure(3.4 * columns + 0.6, 3.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        _histogram(ax, kept.scores.get(name, []), rejected.scores.get(name, []), f"score: {name}")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return _encode(fig)


def scored_figure(blocks: list[ScoreBlock]) -> tuple[str, int]:
    """One histogram per score of the `curate score` outputs."""
    import numpy as np

    columns = min(3, len(blocks))
    rows = (len(blocks) + columns - 1) // columns
    fig = _new_figure(3.4 * columns + 0.6, 2.8 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, block in zip(axes, blocks, strict=False):
        values = np.asarray(block.values, dtype=float)
        if values.size == 0:
            ax.set_visible(False)
            continue
        bins, clip = _bins(values)
        ax.hist(np.minimum(values, clip) if clip is not None else values, bins=bins, color=ACCENT, alpha=0.85,
                edgecolor="white", linewidth=0.6)
        median = float(np.median(values))
        ax.axvline(min(median, clip or median), color="#1f2933", linewidth=1, linestyle="--")
        ax.set_title(f"{block.name} · median {median:.3g}", fontsize=10, color="#1f2933", loc="left")
        _style(ax)
    for ax in axes[len(blocks):]:
        ax.set_visible(False)
    return _encode(fig)


def _png_width(path: Path) -> int | None:
    """Display width of a PNG drawn elsewhere: its pixel width, at most the page's."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return min(int.from_bytes(header[16:20], "big"), 1000)


def make_figures(data: ReportData) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    stage_order = [step.stage for step in data.funnel.steps] if data.funnel else []
    if data.funnel is not None:
        figures["funnel"] = Figure("funnel", "Funnel", "Rows remaining after each stage, from the start to kept.",
                                   *funnel_figure(data.funnel))
    if data.reasons:
        figures["reasons"] = Figure("reasons", "Reject reasons", "Rows rejected, by stage and reason (top 15).",
                                    *reasons_figure(data.reasons, stage_order))
    if data.kept.count or data.rejected.count:
        figures["lengths"] = Figure("lengths", "Lengths", "Words per prompt and per response; dashed: kept median.",
                                    *lengths_figure(data.kept, data.rejected))
    scores = scores_figure(data.kept, data.rejected)
    if scores:
        figures["scores"] = Figure("scores", "Scores", "Quality scores of kept and rejected rows.", *scores)
    if data.scoring:
        figures["scored"] = Figure("scored", "Scores (curate score)", "Distribution of each score over the scored "
                                   "rows; dashed: median.", *scored_figure(data.scoring))
    figures.update(stage_figures(data))
    if data.tokens is not None and data.tokens.lengths:
        figures["tokens"] = Figure("tokens", "Tokens", data.tokens.caption(), *tokens_figure(data.tokens))
    for i, run in enumerate(_curve_runs(data.files)):
        train = next((t for t in data.files.train if t.folder == run.folder), None)
        drawn = training_figure(train) if train is not None else None
        if drawn:
            figures[f"compare-{i}-curve"] = Figure(f"compare-{i}-curve", train.title(), "Loss per step with the "
                                                   "learning rate (dotted, right axis), from metrics.json.", *drawn)
        for j, image in enumerate(run.images):
            key = f"compare-{i}-{j}"
            where = image.relative_to(data.run) if image.is_relative_to(data.run) else image
            figures[key] = Figure(key, f"{run.folder.name}: {image.stem}", f"{where}, as the stage drew it.",
                                  base64.b64encode(image.read_bytes()).decode("ascii"), _png_width(image))
    return figures


def _curve_runs(files: RunFiles) -> list[CompareRun]:
    """Compare folders, then training runs (their scalar metrics as the table, their PNGs)."""
    trains = [CompareRun(t.folder, {k: v for k, v in t.metrics.items() if not isinstance(v, (Mapping, list))},
                         t.images) for t in files.train]
    return [*files.compare, *trains]


# -- the page -----------------------------------------------------------------------------

def _compare_table(run: CompareRun) -> tuple[list[str], list[list[str]]] | None:
    """A list of flat result rows (or a dict of them) as a table; anything else stays raw JSON."""
    results = run.results
    if isinstance(results, Mapping):
        for key in ("results", "arms", "runs", "rows"):
            if isinstance(results.get(key), list):
                results = results[key]
                break
    if isinstance(results, Mapping) and results and all(not isinstance(v, (Mapping, list)) for v in results.values()):
        results = [{"metric": k, "value": v} for k, v in results.items()]  # a flat metrics.json
    if not isinstance(results, list) or not results or not all(isinstance(r, Mapping) for r in results):
        return None
    header = [k for k in dict.fromkeys(k for r in results for k in r) if all(
        not isinstance(r.get(k), (Mapping, list)) for r in results)]
    if not header:
        return None

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))

    return header, [[cell(r.get(k)) for k in header] for r in results[:60]]


def render(data: ReportData) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    kept_summary = {name: summarize(values) for name, values in (
        ("prompt words", data.kept.prompt_words), ("response words", data.kept.response_words),
        *((f"score: {n}", v) for n, v in sorted(data.kept.scores.items())))}
    compare = [(run, _compare_table(run), json.dumps(run.results, indent=2, ensure_ascii=False)[:20000])
               for run in _curve_runs(data.files)]
    rejected_total = sum(block.count for block in data.reasons)
    funnel = data.funnel
    start = funnel.start if funnel else data.kept.count + rejected_total
    return template.render(
        data=data, funnel=funnel, figures=data.figures, kept_summary=kept_summary, compare=compare,
        rejected_total=rejected_total, start=start,
        keep_rate=(data.kept.count / start) if start else None,
        errors_total=sum(count for _, count, _ in data.errors),
        evidence=data.files.evidence(), generation=generation_rejects(data.files), created=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Collect, draw and write the report atomically; returns its path."""
    data = collect(run_dir)
    data.figures = make_figures(data)
    html = render(data)
    out = Path(out)
    with atomic_writer(out) as handle:
        handle.write(redact_text(html))  # stage files shown verbatim may come from runs older than redaction
    return out


# -- generation and training --------------------------------------------------------------

def generation_figure(files: RunFiles) -> tuple[str, int] | None:
    """Generation as a stage: candidates the teacher proposed -> rejected by reason -> accepted -> rows."""
    manifest = files.manifest
    if manifest is None or not manifest.totals.get("candidates"):
        return None
    totals = manifest.totals
    rows = [("candidates", int(totals.get("candidates") or 0))]
    rows += [(f"rejected: {reason}", n) for reason, n in list(manifest.rejected.items())[:8]]
    rows += [("accepted instructions", int(totals.get("instructions_accepted") or 0)),
             ("rows written", int(totals.get("rows") or 0))]
    fig = _new_figure(7.5, 0.42 * len(rows) + 1.0)
    ax = fig.add_subplot()
    labels, values = [r[0] for r in rows][::-1], [r[1] for r in rows][::-1]
    colours = [KEPT if not label.startswith("rejected") else REJECTED for label in labels]
    bars = ax.barh(labels, values, color=colours, height=0.62)
    top = max(values) or 1
    _label_bars(ax, bars, [f"{v:,}" for v in values], top)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("count", fontsize=9, color="#3d4852")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _style(ax)
    return _encode(fig)


def rouge_scores(files: RunFiles) -> list[float]:
    """Each accepted instruction's highest ROUGE-L against the pool when it was accepted (meta.most_similar)."""
    scores: dict[str, float] = {}
    for row in iter_rows(files.generated or files.curated):
        meta = row.get("meta")
        similar = meta.get("most_similar") if isinstance(meta, Mapping) else None
        if isinstance(similar, list) and similar and isinstance(similar[0], Mapping):
            score = similar[0].get("score")
            if isinstance(score, (int, float)):
                scores.setdefault(str(meta.get("instruction", row.get("id"))), float(score))
    return list(scores.values())


def rouge_figure(values: list[float], threshold: float | None) -> tuple[str, int]:
    import numpy as np

    fig = _new_figure(7.5, 3.0)
    ax = fig.add_subplot()
    ax.hist(np.asarray(values), bins=np.linspace(0, 1, 21), color=ACCENT, edgecolor="white", linewidth=0.6)
    if threshold is not None:
        ax.axvline(threshold, color=REJECTED, linewidth=1.2, linestyle="--", label=f"novelty threshold {threshold}")
        ax.legend(fontsize=8, framealpha=0.9, edgecolor="none")
    ax.set_xlabel("highest ROUGE-L F against the pool", fontsize=9, color="#3d4852")
    ax.set_ylabel("instructions", fontsize=9, color="#3d4852")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _style(ax)
    return _encode(fig)


def training_figure(run: TrainRun) -> tuple[str, int] | None:
    """Train and eval loss per step, the learning rate on a second axis, titled with what ran."""
    train, evals = run.train_loss, run.eval_loss
    if not train and not evals:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(7.5, 3.4)
    ax = fig.add_subplot()
    if train:
        ax.plot([e.get("step") for e in train], [e.get("loss") for e in train], color=KEPT, label="train loss")
    if evals:
        ax.plot([e.get("step") for e in evals], [e.get("loss") for e in evals], color=REJECTED, marker="o",
                label="eval loss")
    ax.set_xlabel("optimizer step", fontsize=9, color="#3d4852")
    ax.set_ylabel("loss", fontsize=9, color="#3d4852")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    rates = [(e.get("step"), e.get("learning_rate")) for e in train if e.get("learning_rate") is not None]
    if rates:
        lr = ax.twinx()
        lr.plot([s for s, _ in rates], [r for _, r in rates], color=NEUTRAL, linestyle=":", label="learning rate")
        lr.set_ylabel("learning rate", fontsize=9, color=NEUTRAL)
        lr.tick_params(labelsize=8, colors=NEUTRAL)
        lr.spines[["top"]].set_visible(False)
    ax.set_title(run.title(), fontsize=10, color="#1f2933", loc="left")
    handles = [h for axis in fig.axes for h in axis.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, fontsize=8, framealpha=0.9, edgecolor="none", loc="upper right")
    _style(ax)
    return _encode(fig)


def stage_figures(data: ReportData) -> dict[str, Figure]:
    """Generation funnel, ROUGE-L distribution and training curves; only those with something to show."""
    figures: dict[str, Figure] = {}
    generation = generation_figure(data.files)
    if generation:
        figures["generation"] = Figure("generation", "Generation", "Candidates the teacher proposed, those "
                                       "rejected by reason (manifest.json totals), accepted and written.", *generation)
    scores = rouge_scores(data.files)
    if scores:
        threshold = data.files.manifest.config.get("novelty_threshold") if data.files.manifest else None
        figures["rouge"] = Figure("rouge", "Novelty", f"Highest ROUGE-L of each of {len(scores):,} accepted "
                                  "instructions against the pool at the time it was accepted.",
                                  *rouge_figure(scores, threshold))
    return figures


@dataclass
class TokenLengths:
    """Kept rows measured in tokens with the trained run's own tokenizer and chat template."""

    run: TrainRun
    tokenizer: Any
    lengths: list[int] = field(default_factory=list)

    @classmethod
    def for_run(cls, files: RunFiles) -> TokenLengths | None:
        """The first training run in the folder that saved its tokenizer, else None (lengths stay in words)."""
        for run in files.train:
            if (run.folder / "tokenizer_config.json").is_file():
                from transformers import AutoTokenizer

                try:
                    return cls(run, AutoTokenizer.from_pretrained(str(run.folder)))
                except (OSError, ValueError):
                    continue
        return None

    def add(self, row: Mapping[str, Any]) -> None:
        messages = row.get("messages")
        if isinstance(messages, list) and messages:
            ids = self.tokenizer.apply_chat_template(messages, tokenize=True)
            self.lengths.append(len(ids["input_ids"] if isinstance(ids, Mapping) else ids))

    @property
    def over(self) -> int:
        limit = self.run.max_length
        return sum(1 for n in self.lengths if limit is not None and n > limit)

    def caption(self) -> str:
        limit = self.run.max_length
        where = f"{self.run.folder.name}'s tokenizer and chat template"
        if limit is None:
            return f"Tokens per kept conversation ({where}); the run set no max_length."
        return (f"Tokens per kept conversation ({where}) against the training max_length {limit:,}: "
                f"{self.over:,} of {len(self.lengths):,} rows are longer and were truncated.")


def tokens_figure(tokens: TokenLengths) -> tuple[str, int]:
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(7.5, 3.0)
    ax = fig.add_subplot()
    _histogram(ax, [float(n) for n in tokens.lengths], [], "tokens per conversation (kept)")
    limit = tokens.run.max_length
    if limit is not None:
        ax.axvline(limit, color=REJECTED, linewidth=1.2, linestyle="--", label=f"max_length {limit:,}")
        ax.legend(fontsize=8, framealpha=0.9, edgecolor="none")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _encode(fig)
