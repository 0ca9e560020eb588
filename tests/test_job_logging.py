"""The rq processes' console handler lets `rq cron`'s stop through a log line being written."""

import io
import logging

import pytest
from rq.exceptions import StopRequested

from jobs.context import ConsoleHandler


class StoppedMidWrite(io.StringIO):
    """A stream whose write is interrupted by rq cron's signal handler (it raises StopRequested)."""

    def write(self, text: str) -> int:
        raise StopRequested()


def test_a_stop_raised_while_a_line_is_written_reaches_the_process_not_a_logging_traceback(capsys):
    logger = logging.getLogger("tests.job_logging")
    handler = ConsoleHandler(StoppedMidWrite())
    logger.addHandler(handler)
    try:
        with pytest.raises(StopRequested):
            logger.warning("a line")
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err


def test_other_write_errors_are_still_reported_by_logging(capsys):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    logger = logging.getLogger("tests.job_logging.other")
    handler = ConsoleHandler(Broken())
    logger.addHandler(handler)
    try:
        logger.warning("a line")  # logging's own handleError: reported, not raised
    finally:
        logger.removeHandler(handler)
    assert "Logging error" in capsys.readouterr().err
