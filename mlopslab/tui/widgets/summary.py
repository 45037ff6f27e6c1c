"""The side-by-side summary table shown when a run ends: `report.rows`, the same rows as `report.table`."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from mlopslab import report
from mlopslab.summary import Summary


class SummaryTable(DataTable):
    """`show(summary)` fills the table once per distinct summary; on a narrow screen the lane columns are
    headed by the lane's name alone, so that every lane keeps its column."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kwargs)
        self._shown: Any = None

    def show(self, summary: Summary) -> None:
        header, body = report.rows(summary)
        header[0] = f"status: {summary.status}"
        wanted = sum(max(len(str(row[i])) for row in [header, *body]) + 2 for i in range(len(header)))
        if wanted > self.app.size.width - 2:   # narrow: a column per lane matters more than its delivery's name
            header = [header[0], *(label.split(" (")[0] for label in header[1:])]
        if (header, body) == self._shown:
            return
        self._shown = (header, body)
        self.clear(columns=True)
        for i, label in enumerate(header):
            self.add_column(label, width=max(len(str(row[i])) for row in [header, *body]))
        self.add_rows([Text(row[0], style="bold"), *row[1:]] if report.is_section(row) else row for row in body)
