"""The Textual lab: a scenario picker, side-by-side lanes with live plots, keys, replay and SVG export.

Everything here reads the run through snapshots (`view.RunView`) copied out of a `RunState`; nothing
outside this package imports Textual.
"""
