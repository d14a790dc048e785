"""One meeting session on the demo county, served by a real uvicorn on 127.0.0.1, shared by the
tests of this folder (loading the demo takes seconds; every test starts from a reset state)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coverage.serve.app import create_app, start_server
from coverage.serve.state import Session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scenario folder of its own (saved plans go beside the scenario): it extends the demo."""
    d = tmp_path_factory.mktemp("meeting")
    (d / "base.yaml").write_text(
        f"extends: {(ROOT / 'scenarios' / 'demo_baseline.yaml').as_posix()}\nname: 示例县 现状评估\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def session(scenario_dir: Path) -> Session:
    """The session on ``base.yaml`` (exports under ``<scenario dir>/../exports``)."""
    return Session(scenario_dir / "base.yaml", scenario_dir.parent / "exports")


@pytest.fixture(scope="session")
def server(session: Session) -> Iterator[str]:
    """Base URL of the app on a real uvicorn server (free port on 127.0.0.1)."""
    srv, thread, port = start_server(create_app(session), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


@pytest.fixture()
def client(server: str, session: Session) -> Iterator[httpx.Client]:
    """An HTTP client on the server, the session back on variant 方案1 with no edits."""
    with httpx.Client(base_url=server, timeout=60) as c:
        c.post("/api/variants", json={"select": "方案1"}).raise_for_status()
        c.post("/api/reset").raise_for_status()
        yield c
