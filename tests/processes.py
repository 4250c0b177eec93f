"""Services as real subprocesses, for tests that SIGKILL or SIGTERM them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.servers import free_port
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """`python -m <module>` with the given environment, its port chosen free unless given.

    Output goes to a temp file (`.log_text()`), so a failing test can show what the service said.
    """

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        *,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.module = module
        self.port = port or free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"{module}.", suffix=".log", delete=False
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until GET /ready answers 200; fail early if the process died."""

        async def probe() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    return (await client.get(f"{self.url}/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(probe, timeout=timeout, interval=0.1, what=f"{self.module} ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path Kubernetes takes. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    @property
    def log_path(self) -> str:
        return self._log.name

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        self._log.close()
        os.unlink(self._log.name)
