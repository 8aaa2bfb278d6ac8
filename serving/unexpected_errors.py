"""A 500 for an error no handler took, logged once, at most once a minute with its traceback.

Starlette's `ServerErrorMiddleware` (outside every middleware an app adds) passes such an error to the app's
handler for `Exception` and then raises it again to uvicorn, which logs it a second time (starlette 1.10,
`middleware/errors.py` `__call__`; uvicorn 0.55, `protocols/http/httptools_impl.py` `run_asgi`): two tracebacks
per 500 and no limit on them, so a client repeating a failing request fills the log. This middleware, added last
(outermost of the app's own), answers the 500 itself and raises nothing further.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from textclf.runtime.logs import ThrottledLog

logger = logging.getLogger(__name__)

ERROR_LOG_SECONDS = 60.0
"""Most one traceback of an unexpected error per this many seconds; the others are counted into the next line."""


class UnexpectedErrors:
    def __init__(self, app: ASGIApp, service: str, log_seconds: float = ERROR_LOG_SECONDS):
        self.app, self.service = app, service
        self._log_lines = ThrottledLog(log_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def noting_the_answer(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting_the_answer)
        except Exception as error:
            self._log(scope, error)
            if not answered:
                answer = {"error": f"{type(error).__name__}: {error} (details in the {self.service}'s log)"}
                await JSONResponse(answer, status_code=500)(scope, receive, send)

    def _log(self, scope: Scope, error: Exception) -> None:
        counted = self._log_lines.due()
        if counted is None:
            return
        logger.error(
            "unexpected error answering %s %s (%d unexpected errors since the last such line)",
            scope.get("method"), scope.get("path"), counted.total(), exc_info=error,
        )  # fmt: skip
