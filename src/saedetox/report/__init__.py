"""The report: self-contained HTML and markdown from run metrics, with plots and analyses."""
