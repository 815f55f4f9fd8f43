"""`mlp eval --plot`: the confusion matrix as a figure (matplotlib is imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plots import pyplot, save_figure

# Past this many classes the cells are too small to hold their counts; the colours remain.
MAX_ANNOTATED = 20
LABEL_CHARS = 24  # longer class labels are cut on the axes (the JSON has them whole)


def confusion_figure(labels: list[Any], matrix: list[list[int]], path: Path, title: str) -> Path:
    """Rows: true class; columns: predicted class. Each cell is coloured by its share of the
    true class's rows (so the diagonal reads as each class's recall, whatever the class sizes)
    and holds the row count. Labels and the title are the user's text, drawn as written (a `$`
    never starts mathtext)."""
    plt = pyplot()
    n = len(labels)
    totals = [sum(row) for row in matrix]
    shares = [[c / t if t else 0.0 for c in row] for row, t in zip(matrix, totals)]
    side = min(max(4.5, 0.55 * n + 2.5), 24)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's rows")
    names = [_short(label) for label in labels]
    slanted = n > 2 and max(map(len, names)) > 3  # long labels side by side would overlap
    ax.set_xticks(
        range(n),
        names,
        rotation=45 if slanted else 0,
        ha="right" if slanted else "center",
        parse_math=False,
    )
    ax.set_yticks(range(n), names, parse_math=False)
    ax.set(xlabel="predicted class", ylabel="true class")
    if n <= MAX_ANNOTATED:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                dark = shares[i][j] > 0.6
                ax.text(
                    j,
                    i,
                    f"{count:,}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
    rows = sum(totals)
    correct = sum(matrix[k][k] for k in range(n))
    accuracy = correct / rows if rows else 0.0
    ax.set_title(f"{title}\n{rows:,} rows, accuracy {accuracy:.4f}", fontsize=10, parse_math=False)
    fig.tight_layout()
    return save_figure(fig, path)


def _short(label: Any) -> str:
    text = str(label)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
