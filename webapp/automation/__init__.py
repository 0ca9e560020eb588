"""Automation on the desk's order path (no Flask here): strategy deployments and their runner, stop
rules fired from the feed, loss and drawdown breakers, the intraday square-off and the day-end roll.
Every automatic act goes through the same ticket → risk review → batch → engine path as a person's,
and raises a RiskAlert (webapp.automation.alerts)."""
