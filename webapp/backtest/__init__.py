"""Backtests: the live strategy classes run over stored history (engine), with Indian charges (charges)
and the results' measures (metrics). Pure: no Flask, no database, no jobs."""
