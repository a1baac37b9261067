"""The Procfile under a plain Procfile runner (honcho): every process starts, works
together with the others, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import socketio

from hub.config import WORKER_NAMES
from hub.devstack import free_port

ROOT = Path(__file__).parents[2]


async def test_honcho_runs_the_procfile_and_stops_it_cleanly(
    node_env: Callable[..., dict[str, str]],
) -> None:
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **node_env(LOG_FORMAT="json", HOST="127.0.0.1"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
    }
    env.pop("PORT", None)
    proc = await asyncio.create_subprocess_exec(
        str(Path(bin_dir) / "honcho"),
        "start",
        "--no-colour",
        "-f",
        str(ROOT / "Procfile"),
        "-d",
        str(ROOT),
        "-p",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the web process never became ready")
            # the processes work together: an assignment reaches the assignee
            tokens = []
            for name in ("Ann", "Ben"):
                async with http.post(
                    url + "/api/auth/register",
                    json={
                        "email": f"{name}.{port}@example.com",
                        "name": name,
                        "password": "s3cret-pass",
                    },
                ) as resp:
                    tokens.append(await resp.json())
            ann, ben = tokens
            headers = {"Authorization": f"Bearer {ann['access_token']}"}
            async with http.post(url + "/api/boards", json={"name": "B"}, headers=headers) as resp:
                board_id = (await resp.json())["id"]
            async with http.post(
                url + f"/api/boards/{board_id}/members",
                json={"email": ben["user"]["email"], "role": "editor"},
                headers=headers,
            ) as resp:
                assert resp.status == 201
        writer = socketio.AsyncClient(reconnection=False)
        reader = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        reader.on("notification", got.put_nowait)
        await writer.connect(
            url,
            auth={"token": ann["access_token"]},
            headers={"Origin": url},
            transports=["websocket"],
        )
        await reader.connect(
            url,
            auth={"token": ben["access_token"]},
            headers={"Origin": url},
            transports=["websocket"],
        )
        try:
            ack = await writer.call(
                "task:create",
                {"board_id": board_id, "title": "Via honcho", "assignee_id": ben["user"]["id"]},
            )
            assert ack["ok"], ack
            notification = await asyncio.wait_for(got.get(), 30)
            assert notification["type"] == "task_assigned"
        finally:
            await writer.disconnect()
            await reader.disconnect()

        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = output.decode()
    # honcho itself answers a SIGTERM with 128 + 15; each process must exit 0
    assert proc.returncode == 143, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    for name in ("web", *WORKER_NAMES):
        assert f"{name}.1 stopped (rc=0)" in log, log[-4000:]
