"""Log lines of a server process, each carrying the id of the request it was written for."""

from __future__ import annotations

import logging

from stenostack.http.request_id import current_request_id

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdLogFilter(logging.Filter):
    """Gives every log record the id of the request it was written for."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
