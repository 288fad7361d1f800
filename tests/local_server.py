"""Runs an aiohttp app on 127.0.0.1 (a free port) in a background thread; it stops on exit or after a time limit."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

MAX_LIFETIME_S = 300  # a server a test forgot to stop ends by itself


class LocalServer:
    def __init__(self, app: web.Application, lifetime_s: float = MAX_LIFETIME_S):
        self.app, self.lifetime_s = app, lifetime_s
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="local-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=self.lifetime_s)
        except TimeoutError:
            pass
        finally:
            await runner.cleanup()

    def __enter__(self) -> LocalServer:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("local test server did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def call(self, coroutine):
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)
