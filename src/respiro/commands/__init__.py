"""The user's commands beside `dvc repro`, one module each; `respiro COMMAND --help`."""
