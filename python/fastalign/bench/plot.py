"""The ``fastalign bench --plot`` figure: one panel per workload family, read at a glance.

Each panel holds one workload family (a bench ``op``): one horizontal bar per implementation
that is not the baseline, grouped under its workload's line, on a log speed-up axis with the
baseline at 1x (left of the line: slower than the baseline; right: faster). fastalign's bars
are coloured, the peers' grey; a row that failed (wrong result, or it did not run) is a red
mark at 1x labelled FAIL with its reason. Where a family measures peak memory, a second panel
beside it shows each row's peak in MB (log axis), the baseline's too.

matplotlib is imported here only (``import fastalign.bench`` does not need it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastalign.bench._harness import Row
from fastalign.errors import InvalidInputError

FASTALIGN = "#1f77b4"
PEER = "#9e9e9e"
BASELINE = "#424242"
FAILED = "#d62728"


def _label(r: Row, width: int = 46) -> str:
    text = r.impl + (f" [{r.note}]" if r.note else "")
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_fastalign(r: Row) -> bool:
    return r.impl.startswith("fastalign")


def _families(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.op, []).append(r)
    return out


def _layout(rows: list[Row]) -> list[tuple[str, Any]]:
    """The lines of one panel, top to bottom: ``("head", workload)`` then one ``("row", r)``
    per row of that workload, the baseline's included (marked at 1x)."""
    lines: list[tuple[str, Any]] = []
    seen: dict[str, list[Row]] = {}
    for r in rows:
        seen.setdefault(r.workload, []).append(r)
    for workload, rs in seen.items():
        lines.append(("head", workload))
        lines.extend(("row", r) for r in rs)
    return lines


def _fmt_speed(x: float) -> str:
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def plot(rows: Sequence[Row], path: str, *, title: str = "fastalign bench") -> None:
    """Write the figure of ``rows`` (speed-ups filled in, as :func:`fastalign.bench.run`
    returns them) to ``path`` (PNG, SVG or PDF, by the extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    families = _families(rows)
    if not families:
        raise InvalidInputError("no rows to plot")
    layouts = {op: _layout(rs) for op, rs in families.items()}
    has_mem = {op: any(r.peak_mb for r in rs) for op, rs in families.items()}  # > 0 somewhere
    heights = [max(2, len(lines)) for lines in layouts.values()]
    any_mem = any(has_mem.values())
    inches = 0.8 + 0.22 * sum(heights) + 0.75 * len(heights)  # rows, plus titles and axes
    fig = plt.figure(figsize=(15 if any_mem else 11, inches))
    grid = fig.add_gridspec(
        len(families), 2 if any_mem else 1, height_ratios=heights,
        width_ratios=[3, 1] if any_mem else [1], hspace=0.75 * len(heights) / sum(heights) * 3,
        wspace=0.05, top=1 - 0.6 / inches, bottom=0.45 / inches, left=0.3, right=0.98,
    )  # fmt: skip
    speed_ticks = FuncFormatter(lambda x, _: f"{x:g}x")
    mem_ticks = FuncFormatter(lambda x, _: f"{x:g}")

    for k, (op, lines) in enumerate(layouts.items()):
        ax = fig.add_subplot(grid[k, 0])
        ys = list(range(len(lines)))[::-1]
        speeds = [r.speedup for kind, r in lines if kind == "row" and r.speedup]
        lo = min([1.0, *speeds]) / 2
        hi = max([1.0, *speeds]) * 2.5
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.axvline(1.0, color=BASELINE, linewidth=1)
        ticks, labels = [], []
        for y, (kind, item) in zip(ys, lines, strict=True):
            ticks.append(y)
            if kind == "head":
                labels.append(item if len(item) <= 60 else item[:59] + "…")
                continue
            r: Row = item
            labels.append("    " + _label(r))
            if r.baseline:
                ax.text(1.0, y, "  baseline", va="center", fontsize=8, color=BASELINE)
            elif not r.ok:
                reason = r.error or "wrong result"
                ax.plot([1.0], [y], marker="X", color=FAILED, markersize=9)
                ax.text(1.0, y, f"  FAIL: {reason[:50]}", va="center", fontsize=8, color=FAILED)
            elif r.speedup:
                color = FASTALIGN if _is_fastalign(r) else PEER
                ax.barh(y, r.speedup - lo, left=lo, height=0.7, color=color)
                ax.text(r.speedup * 1.05, y, _fmt_speed(r.speedup), va="center", fontsize=8)
            else:
                ax.text(lo * 1.1, y, "no baseline to compare with", va="center", fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
        for tick, (kind, _) in zip(ax.get_yticklabels(), lines, strict=True):
            if kind == "head":
                tick.set_fontweight("bold")
        ax.set_ylim(-0.7, len(lines) - 0.3)
        ax.set_title(op, loc="left", fontsize=10, fontweight="bold")
        ax.grid(axis="x", which="major", alpha=0.3)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(speed_ticks)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=8)
        if k == len(layouts) - 1:
            ax.set_xlabel("speed-up over the baseline row (log scale; > 1x is faster)")
        if any_mem and has_mem[op]:
            mx = fig.add_subplot(grid[k, 1], sharey=ax)
            mems = [r.peak_mb for kind, r in lines if kind == "row" and r.peak_mb]
            mlo, mhi = min(mems) / 2, max(mems) * 3
            mx.set_xscale("log")
            mx.set_xlim(mlo, mhi)
            for y, (kind, r) in zip(ys, lines, strict=True):
                if kind != "row" or not r.peak_mb or r.error is not None:
                    continue
                color = BASELINE if r.baseline else FASTALIGN if _is_fastalign(r) else PEER
                mx.barh(y, r.peak_mb - mlo, left=mlo, height=0.7, color=color)
                mx.text(r.peak_mb * 1.08, y, f"{r.peak_mb:,.0f}", va="center", fontsize=8)
            mx.tick_params(axis="y", left=False, labelleft=False)
            mx.xaxis.set_major_locator(LogLocator(base=10, numticks=4))
            mx.xaxis.set_major_formatter(mem_ticks)
            mx.xaxis.set_minor_formatter(NullFormatter())
            mx.tick_params(axis="x", labelsize=8)
            mx.grid(axis="x", which="major", alpha=0.3)
            mx.set_title("peak memory, MB", loc="left", fontsize=9)
    handles = [
        Patch(color=FASTALIGN, label="fastalign"),
        Patch(color=PEER, label="peer / other"),
        Patch(color=FAILED, label="failed"),
    ]
    top = 1 - 0.15 / inches
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=9, frameon=False,
               bbox_to_anchor=(0.98, top))  # fmt: skip
    fig.suptitle(title, x=0.01, y=top, ha="left", va="top", fontsize=12, fontweight="bold")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
