"""The trainer's report: the seed's figures, the honest ones next to them, the leakage control, a verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tradepulse.ml.evaluation import Evaluation
from tradepulse.ml.labels import CLASS_NAMES
from tradepulse.ml.trainer import SEED_TARGET, TrainResult


def _edge_line(e: Evaluation) -> str:
    return (
        f"accuracy {e.accuracy:.4f} vs chance {e.chance_accuracy:.4f} ({e.accuracy_edge_se:+.1f} SE), "
        f"balanced accuracy {e.balanced_accuracy:.4f} vs 0.3333 ({e.balanced_edge_se:+.1f} SE)"
    )


def render(result: TrainResult, console: Console) -> None:
    e = result.main.evaluation
    c = result.control.evaluation
    console.print(
        f"\n[bold]=== Model Evaluation ===[/bold]  ({result.kind}, {result.samples:,} samples, {result.data_source})"
    )
    console.print(
        f"held-out: the last {e.n:,} samples, walk-forward in {len(result.main.fold_accuracy)} folds, each trained "
        f"only on earlier samples (labels purged, embargo); ~{e.n_effective:,.0f} independent samples"
    )
    console.print(f"Accuracy:  {e.accuracy:.4f}")
    console.print(f"Precision: {e.precision:.4f}")
    console.print(f"Recall:    {e.recall:.4f}")
    console.print(f"F1 Score:  {e.f1:.4f}")
    console.print("\nConfusion Matrix (rows: true SELL/HOLD/BUY, columns: predicted):")
    for row in e.confusion:
        console.print(" [" + " ".join(f"{v:6d}" for v in row) + "]")

    table = Table(title="beyond accuracy", title_justify="left")
    for col in ("metric", "model", "leakage control (random walk)"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    table.add_row("balanced accuracy (chance 0.333)", f"{e.balanced_accuracy:.4f}", f"{c.balanced_accuracy:.4f}")
    table.add_row("macro F1", f"{e.macro_f1:.4f}", f"{c.macro_f1:.4f}")
    table.add_row("accuracy", f"{e.accuracy:.4f}", f"{c.accuracy:.4f}")
    table.add_row(
        "majority-class baseline (train majority)", f"{e.majority_accuracy:.4f}", f"{c.majority_accuracy:.4f}"
    )
    table.add_row(
        "chance (test majority rate)",
        f"{e.chance_accuracy:.4f} ± {e.accuracy_se:.4f}",
        f"{c.chance_accuracy:.4f} ± {c.accuracy_se:.4f}",
    )
    table.add_row("accuracy edge over chance", f"{e.accuracy_edge_se:+.1f} SE", f"{c.accuracy_edge_se:+.1f} SE")
    table.add_row(
        "IC (Spearman, P(BUY)-P(SELL) vs fwd return)",
        f"{e.ic:+.4f} (t {e.ic_t:+.1f})",
        f"{c.ic:+.4f} (t {c.ic_t:+.1f})",
    )
    share = " / ".join(f"{n} {s:.2f}" for n, s in zip(CLASS_NAMES, e.class_share, strict=True))
    table.add_row("test labels", share, " / ".join(f"{s:.2f}" for s in c.class_share))
    b, cb = e.backtest, c.backtest
    table.add_row(
        f"long/short backtest return (cost {b.cost_bps:g} bp)", f"{b.total_return:+.2%}", f"{cb.total_return:+.2%}"
    )
    table.add_row(f"  Sharpe (annualised from {result.bar_seconds:g} s bars)", f"{b.sharpe:+.2f}", f"{cb.sharpe:+.2f}")
    table.add_row("  turnover (position change per bar)", f"{b.turnover:.3f}", f"{cb.turnover:.3f}")
    table.add_row(
        "buy-and-hold return / Sharpe",
        f"{b.bh_return:+.2%} / {b.bh_sharpe:+.2f}",
        f"{cb.bh_return:+.2%} / {cb.bh_sharpe:+.2f}",
    )
    console.print(table)

    t = result.timings
    console.print(
        f"time: data {t.get('data_s', 0):.2f} s, walk-forward {t.get('walk_forward_s', 0):.2f} s, final fit "
        f"{t.get('final_fit_s', 0):.2f} s, control {t.get('control_s', 0):.2f} s, total {t.get('total_s', 0):.2f} s"
    )
    if result.params:
        console.print(f"parameters: {result.params}")

    # the seed's target line, said where it applies
    where = (
        "on the simulator's regime data (a known-answer check: that structure is learnable by design)"
        if result.on_simulator
        else "on this data's held-out period"
    )
    if e.accuracy >= SEED_TARGET:
        console.print(f"\n✓ Model meets accuracy target (>= {SEED_TARGET:.2f}) {where}")
    else:
        console.print(f"\n✗ Model is below the accuracy target (>= {SEED_TARGET:.2f}) {where}")

    console.print(f"leakage control: {_edge_line(c)}")
    if result.leak_suspected:
        console.print(
            "[bold red]LEAK SUSPECTED[/bold red]: the same pipeline beats chance by more than 3 standard errors on a "
            "pure random walk, where nothing can be predicted. Do not trust these figures."
        )
    else:
        console.print(
            "[green]no leak detected[/green]: on a pure random walk the pipeline stays within 3 standard errors "
            "of chance."
        )

    if result.leak_suspected:
        verdict = "[bold red]VERDICT: not trustworthy[/bold red] (see the leakage control above)"
    elif e.beats_chance:
        verdict = (
            f"[bold green]VERDICT: real out-of-sample edge[/bold green]: {_edge_line(e)}; IC {e.ic:+.3f}; "
            f"backtest {b.total_return:+.2%} after costs vs buy-and-hold {b.bh_return:+.2%}."
        )
        if result.on_simulator:
            verdict += (
                " This edge is the simulator's built-in regime structure; it proves the pipeline can find an edge "
                "that exists, not that any market has one."
            )
    else:
        verdict = (
            f"[bold yellow]VERDICT: no edge[/bold yellow]: {_edge_line(e)}. The model does no better than "
            "predicting the majority class; do not trade it."
        )
    console.print(verdict)
    if result.record is not None:
        state = "promoted (the live service will load it)" if result.promoted else "not promoted"
        console.print(f"registered as [bold]{result.record.version}[/bold] in {result.record.path.parent} ({state})")
