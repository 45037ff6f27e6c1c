"""The shareable report: `mlopslab report RESULTS...` writes one self-contained HTML page and a Markdown twin.

- `runs`:  reads what a report shows — a run's results directory (or its events.jsonl), rebuilt into a
  RunState and its summary, or a repeat/sweep parent directory (`summary.json` of kind "trials");
- `plots`: draws the figures with matplotlib (imported only here, so `mlopslab --help` stays instant) and
  returns each as inline SVG;
- `page`:  puts them together as HTML (inline CSS and SVG, no network) and Markdown.
"""
