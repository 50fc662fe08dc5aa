"""Studies: one command runs a set of training jobs and writes a Markdown table and figures
into its job folder (``python src/study.py study=mode_collapse``)."""
