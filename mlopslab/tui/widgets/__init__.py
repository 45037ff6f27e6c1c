"""Widgets of the run screen, one module per thing drawn."""
