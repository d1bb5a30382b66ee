"""What a session opens it closes: shard files (on xdist workers too) and served students' HTTP clients.

Leaks used to surface as ``PytestUnraisableExceptionWarning`` (unclosed file / socket at garbage collection),
which 13 test modules filtered away; the filters are gone and these tests pin the cause.
"""

from __future__ import annotations

import json

from chat_students import BenchStudent
from loopback import Loopback

from pytest_skillbench.bench import load_bench
from pytest_skillbench.session import SkillbenchSession
from pytest_skillbench.settings import Settings

TASKS = load_bench("bundled").split("holdout")
MP = [t for t in TASKS if t.skill == "modus-ponens"]


def _served(url: str) -> dict:
    return {"backend": "openai", "base_url": f"{url}/v1", "model": "tiny-base", "concurrency": 2,
            "max_retries": 0}


def test_worker_session_close_closes_its_shard_and_http_client(tmp_path):
    with Loopback(BenchStudent(TASKS)) as lb:
        s = Settings(student=["served"], cache=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
                     students={"served": _served(lb.url)})
        sb = SkillbenchSession(s, tmp_path, is_worker=True, run_dir=str(tmp_path / "run"))
        specs = [sp for sp in sb.item_specs() if sp.task in MP][:2]
        sb.set_selected(specs)
        for sp in specs:
            sb.run(sp, "x")
        shard, client = sb.shard, sb.backend("served").client()
        assert shard is not None and not shard.closed and not client.is_closed
        sb.close()
        assert shard.closed and client.is_closed
        sb.close()  # twice is harmless
    lines = [json.loads(x) for p in (tmp_path / "run" / "shards").iterdir() for x in p.read_text().splitlines()]
    assert len(lines) == 2


PROBE_CONFTEST = """
import json, os
import pytest
from pytest_skillbench.plugin import SESSION_KEY

def pytest_sessionfinish(session):
    sb = session.config.stash.get(SESSION_KEY, None)
    if sb is not None:  # what the session holds open once its items have run
        session.config._held = (sb.shard, [b.client() for b in sb._backends.values() if hasattr(b, "client")])

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    held = getattr(config, "_held", None)
    if held is not None:
        shard, clients = held
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"held-{name}.json", "w") as fh:
            json.dump({"shard_closed": shard is None or shard.closed,
                       "clients_closed": [c.is_closed for c in clients]}, fh)
"""


def test_xdist_workers_close_their_shard_and_http_clients(pytester, monkeypatch):
    """Workers never ran ``finish`` (the controller's), so their shard stayed open until the process died,
    and the served student's client kept its sockets."""
    # under an outer `pytest -n`, this process's worker name would leak into the inner controller's
    # environment and the controller would write its file under an inner worker's name
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeconftest(PROBE_CONFTEST)
    with Loopback(BenchStudent(TASKS)) as lb:
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in _served(lb.url).items())
        pytester.makepyprojecttoml(f'[tool.skillbench.students."served"]\n{body}\n')
        res = pytester.runpytest_subprocess("-p", "no:randomly", "--skillbench-cache", str(pytester.path / "c"),
                                            "--student", "served", "-k", "modus_ponens", "-n", "2")
    assert res.ret in (0, 1), res.stdout.str()
    held = {p.name: json.loads(p.read_text()) for p in pytester.path.glob("held-*.json")}
    assert set(held) >= {"held-gw0.json", "held-gw1.json", "held-main.json"}, held
    for name, h in held.items():
        assert h["shard_closed"] and all(h["clients_closed"]), (name, h)
