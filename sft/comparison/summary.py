"""From finished cells to results.json, results.csv, the plots and report.md of `curate compare`.

Arms are compared on the same eval examples, so the headline number is the paired difference
(arm − random) of per-example NLL per token, with a paired bootstrap CI over examples (and
seeds, when there are several). Lower NLL is better, so "arm beats random" means the whole CI
lies below zero; only then is a difference called supported.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from curate.records.jsonl import atomic_writer
from sft.stats import paired_difference

METRIC = "nll"
ROW_FIELDS = ("arm", "size", "seed", "budget", "steps", "tokens_seen", "mean_score", "mean_response_tokens",
              "train_tokens", "overlap_longest", "nll", "nll_lo", "nll_hi", "diff_vs_random", "diff_lo", "diff_hi")


def _row(cell: dict[str, Any]) -> dict[str, Any]:
    est = cell["metrics"][METRIC]
    row = {k: cell.get(k) for k in ROW_FIELDS if k in cell}
    row.update(nll=est["value"], nll_lo=est["lo"], nll_hi=est["hi"])
    for metric in ("exact_match_flexible", "exact_match_strict", "ended", "answer_tokens"):
        if metric in cell["metrics"]:
            row[metric] = cell["metrics"][metric]["value"]
    return row


def paired_vs_random(cells: list[dict[str, Any]], resamples: int) -> list[dict[str, Any]]:
    """For each arm and size: the (seeds x examples) NLL difference to random at the same size and seeds."""
    by_key = {(c["arm"], c["size"], c["seed"]): c for c in cells}
    out = []
    for arm in sorted({c["arm"] for c in cells} - {"random", "base", "all"}):
        for size in sorted({c["size"] for c in cells if c["arm"] == arm}):
            seeds = sorted(s for (a, n, s) in by_key if a == arm and n == size and (("random", size, s) in by_key))
            if not seeds:
                continue
            mine = np.array([by_key[(arm, size, s)]["per_example"][METRIC] for s in seeds])
            theirs = np.array([by_key[("random", size, s)]["per_example"][METRIC] for s in seeds])
            est = paired_difference(mine, theirs, resamples=resamples)
            out.append({"arm": arm, "size": size, "seeds": seeds, "diff": est.value, "lo": est.lo, "hi": est.hi,
                        "supported_better": est.hi < 0, "supported_worse": est.lo > 0})
    return out


def mean_over_seeds(cells: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in cells:
        if c["arm"] != "base":
            groups.setdefault((c["arm"], c["size"]), []).append(c)
    out = {}
    for key, members in groups.items():
        est = [m["metrics"][METRIC] for m in members]
        out[key] = {"value": float(np.mean([e["value"] for e in est])), "lo": float(np.mean([e["lo"] for e in est])),
                    "hi": float(np.mean([e["hi"] for e in est])),
                    "mean_response_tokens": float(np.mean([m["mean_response_tokens"] for m in members]))}
    return out


def conclusion(paired: list[dict[str, Any]], arms: list[str], budget: str) -> str:
    """The one sentence report.md leads with, and whether the CIs support it (plus a note on the bottom arm)."""
    text = _quality_sentence(paired, budget)
    bottom = [p for p in paired if p["arm"] == "bottom"]
    if bottom:
        worse = sum(p["supported_worse"] for p in bottom)
        better = sum(p["supported_better"] for p in bottom)
        text += (f" The bottom arm (worst-scored first) is worse than random at {worse} and better at {better} "
                 f"of {len(bottom)} sizes (paired CI excluding zero).")
    return text


def _quality_sentence(paired: list[dict[str, Any]], budget: str) -> str:
    quality = [p for p in paired if p["arm"] == "quality"]
    if not quality:
        return "No quality-vs-random pair was run, so the grid makes no claim about curation."
    better = sum(p["supported_better"] for p in quality)
    worse = sum(p["supported_worse"] for p in quality)
    sizes = ", ".join(str(p["size"]) for p in quality)
    suffix = (" (fixed-epochs hands bigger or longer subsets more compute, so part of any gap is compute)"
              if budget == "fixed-epochs" else "")
    if better == len(quality):
        return (f"Supported: the quality subsets reach lower held-out NLL than random ones at every size ({sizes}); "
                f"every paired 95% CI of the difference lies below zero{suffix}.")
    if worse == len(quality):
        return f"Supported, against curation: random subsets beat the quality ones at every size ({sizes}){suffix}."
    return (f"Not supported: the quality subsets beat random with a CI excluding zero at {better} of {len(quality)} "
            f"sizes ({sizes}), and lose at {worse}{suffix}.")


def plot(cells: list[dict[str, Any]], base: dict[str, Any] | None, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = mean_over_seeds(cells)
    arms = sorted({a for a, _ in means})
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in arms:
        keys = sorted((k for k in means if k[0] == arm), key=lambda k: k[1])
        x = [k[1] for k in keys]
        y = [means[k]["value"] for k in keys]
        ax.plot(x, y, marker="o", label=arm)
        ax.fill_between(x, [means[k]["lo"] for k in keys], [means[k]["hi"] for k in keys], alpha=0.2)
    if base:
        ax.axhline(base["metrics"][METRIC]["value"], color="gray", linestyle="--", label="base model")
    ax.set_xscale("log", base=2)
    sizes = sorted({k[1] for k in means})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training subset size (rows)")
    ax.set_ylabel("held-out NLL per reference token (lower is better)")
    ax.set_title("NLL vs subset size (95% bootstrap CI bands)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "nll_vs_size.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in arms:
        keys = sorted((k for k in means if k[0] == arm), key=lambda k: k[1])
        ax.scatter([means[k]["mean_response_tokens"] for k in keys], [means[k]["value"] for k in keys], label=arm)
    ax.set_xlabel("mean response tokens of the subset")
    ax.set_ylabel("held-out NLL per reference token")
    ax.set_title("NLL vs subset length (the length confound)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "nll_vs_length.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def rows_with_differences(cells: list[dict[str, Any]], paired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    diffs = {(p["arm"], p["size"]): p for p in paired}
    rows = []
    for cell in sorted(cells, key=lambda c: (c["arm"] != "base", c["arm"], c["size"], c["seed"])):
        row = _row(cell)
        p = diffs.get((cell["arm"], cell["size"]))
        if p:
            row.update(diff_vs_random=p["diff"], diff_lo=p["lo"], diff_hi=p["hi"])
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_writer(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def report_markdown(results: dict[str, Any]) -> str:
    lines = [f"# curate compare: {Path(results['out']).name}", "", f"**{results['conclusion']}**", "",
             f"Eval set: {results['eval_set']['examples']} examples, sha256 `{results['eval_set']['sha256'][:16]}`"
             f" ({results['eval_set']['source']}; {results['eval_set']['dropped_near_duplicates']} dropped as "
             f"near-duplicates of the pool). Budget: `{results['budget']}`"
             + (" (bigger or longer subsets get more compute)." if results["budget"] == "fixed-epochs" else "."),
             "", "## Paired difference vs random (NLL per token, arm − random; below zero = arm better)", "",
             "| arm | size | seeds | difference | 95% CI | supported |", "|---|---|---|---|---|---|"]
    for p in results["paired"]:
        verdict = "better" if p["supported_better"] else ("worse" if p["supported_worse"] else "no (CI spans 0)")
        lines.append(f"| {p['arm']} | {p['size']} | {len(p['seeds'])} | {p['diff']:+.4f} | "
                     f"[{p['lo']:+.4f}, {p['hi']:+.4f}] | {verdict} |")
    shown = ROW_FIELDS[:13]
    lines += ["", "## Every cell", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in results["results"]:
        lines.append("| " + " | ".join(_fmt(row.get(k)) for k in shown) + " |")
    lines += ["", "![NLL vs size](nll_vs_size.png)", "", "![NLL vs length](nll_vs_length.png)", ""]
    return "\n".join(lines)
