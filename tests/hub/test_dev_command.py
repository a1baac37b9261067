"""`taskhub dev` (what `make run` runs): embedded stack, demo data, clean Ctrl-C, data kept."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import socketio

from hub.demo import DEMO_USERS
from hub.devstack import free_port


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


async def _run_until_ready(
    data_dir: Path, port: int
) -> tuple[asyncio.subprocess.Process, str, dict]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "JWT_SECRET")
    }
    env.update(TASKHUB_DATA_DIR=str(data_dir), PORT=str(port), BCRYPT_ROUNDS="4")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "dev", env=env, stderr=asyncio.subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    email, _, password = DEMO_USERS[0]
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            assert proc.returncode is None, "taskhub dev exited while starting"
            try:
                async with http.post(
                    url + "/api/auth/login", json={"email": email, "password": password}
                ) as resp:
                    if resp.status == 200:
                        return proc, url, await resp.json()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("taskhub dev did not become ready in 60 s")


async def _wait_for_notifications(url: str, email: str, password: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/api/auth/login", json={"email": email, "password": password}) as resp,
    ):
        token = (await resp.json())["access_token"]
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"token": token}, headers={"Origin": url}, transports=["websocket"])
    try:
        for _ in range(300):
            listed = await sio.call("notifications:list", {})
            if listed["ok"] and listed["data"]["unread"] > 0:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no notification reached the demo user: {listed}")
    finally:
        await sio.disconnect()


async def _ask_the_bot(url: str, email: str, password: str) -> None:
    """The triage bot runs beside the dev hub and answers in the demo board's channel."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/api/auth/login", json={"email": email, "password": password}) as resp,
    ):
        token = (await resp.json())["access_token"]
    answers: list[dict] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("chat:message", answers.append)
    await sio.connect(url, auth={"token": token}, headers={"Origin": url}, transports=["websocket"])
    try:
        (board,) = (await sio.call("chat:channels", {}))["data"]["channels"]
        history = await sio.call("chat:history", {"channel_id": board["id"]})
        assert len(history["data"]["messages"]) == 3  # the demo's chat
        joined = await sio.call("board:join", {"board_id": board["board_id"]})
        for _ in range(300):  # the bot may still be connecting
            sent = await sio.call("chat:send", {"channel_id": board["id"], "body": "/help"})
            assert sent["ok"], sent
            await asyncio.sleep(0.2)
            if any(m["sender_name"] == "Triage Bot" for m in answers):
                break
        replies = [m for m in answers if m["sender_name"] == "Triage Bot"]
        assert replies and replies[0]["body"].startswith("Here is what I can do"), answers
        assert joined["ok"]
    finally:
        await sio.disconnect()


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return stderr.decode()


async def test_dev_serves_demo_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, url, login = await _run_until_ready(data_dir, free_port())
    token = login["access_token"]
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.get(url + "/api/boards") as resp,
    ):
        boards = (await resp.json())["boards"]
    assert [b["name"] for b in boards] == ["Launch plan"]
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.get(url + f"/api/boards/{boards[0]['id']}/tasks?limit=50") as resp,
    ):
        assert len((await resp.json())["tasks"]) == 12

    # the workers run too: Bob, assignee of half the demo tasks, gets notifications
    await _wait_for_notifications(url, DEMO_USERS[1][0], DEMO_USERS[1][2])
    await _ask_the_bot(url, email=DEMO_USERS[0][0], password=DEMO_USERS[0][2])
    assert (data_dir / "triage-bot.token").stat().st_mode & 0o777 == 0o600

    log = await _stop(proc)
    assert "alice-demo-password" in log  # the demo passwords are printed on start
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", log)]
    assert len(ports) >= 3  # redis, kafka, the hub
    assert not any(_listening(p) for p in ports), "a server outlived Ctrl-C"
    assert not (data_dir / "pg" / "postmaster.pid").exists()

    proc, url, again = await _run_until_ready(data_dir, free_port())
    try:
        assert again["user"]["id"] == login["user"]["id"]  # same data the second time
    finally:
        log = await _stop(proc)
    assert "demo data already present" in log
