"""The screens: picker, run, help, confirm."""
