"""Scoring predictions: the ICBHI metrics, the evaluate stage's reports, the paper's Table 3."""
