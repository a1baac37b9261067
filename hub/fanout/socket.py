"""An Engine.IO socket that, once on websocket, writes every packet straight out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

from hub.fanout.frames import engineio_frame
from hub.fanout.websocket import DirectWebSocket
from hub.fanout.writer import FrameWriter


class DirectSocket(AsyncSocket):
    """engineio's socket with the websocket writer task and queue replaced by a
    `FrameWriter`. Long-polling (and a connection mid-upgrade) keeps the queue."""

    frames: FrameWriter | None = None

    async def send(self, pkt: packet.Packet) -> None:
        frames = self.frames
        if frames is None:
            await super().send(pkt)
        elif await self.check_ping_timeout():
            frames.write(engineio_frame(pkt))

    def write_now(self, frames: list[bytes]) -> bool:
        """Write a broadcast's shared frames (one, or a packet and its binary
        attachments); False when they must go through `send` instead (not a
        websocket yet, or the ping check has to close it)."""
        writer = self.frames
        if writer is None or self.closed:
            return False
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            return False
        for frame in frames:
            writer.write(frame)
        return True

    def _start_writing(self, ws: DirectWebSocket) -> None:
        """From here on packets go to the transport; what was queued before (the OPEN
        packet, or what arrived during an upgrade) goes first, in order."""
        assert ws.transport is not None
        frames = FrameWriter(ws.transport, self.server.outbound_buffer_bytes, self.sid)
        while True:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is not None:
                frames.write(engineio_frame(pkt))
        ws.frames = self.frames = frames

    async def _websocket_handler(self, ws: Any) -> None:
        """engineio's handler (upgrade handshake, reader loop) without its writer task."""
        server = self.server

        async def websocket_wait() -> str | bytes:
            data = await ws.wait()
            if data and len(data) > server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data  # type: ignore[no-any-return]

        if self.connected:  # type: ignore[has-type]  # engineio is untyped
            # an upgrade from long-polling: probe, then the UPGRADE packet
            self.upgrading = True
            try:
                pkt = await websocket_wait()
            except OSError:
                return
            decoded = packet.Packet(encoded_packet=pkt)
            if decoded.packet_type != packet.PING or decoded.data != "probe":
                server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending poll
            try:
                pkt = await websocket_wait()
            except OSError:
                self.upgrading = False
                return
            decoded = packet.Packet(encoded_packet=pkt)
            if decoded.packet_type != packet.UPGRADE:
                self.upgraded = False
                server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                    self.sid,
                    pkt,
                )
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        self._start_writing(ws)
        server.logger.info("%s: Upgrade to websocket successful", self.sid)

        while True:
            try:
                received = await asyncio.wait_for(
                    websocket_wait(), server.ping_interval + server.ping_timeout
                )
            except (asyncio.CancelledError, Exception):
                # as engineio does: a cancelled handler (shutdown) still closes the
                # socket below, so the application sees the disconnect
                break
            if received is None:
                break
            try:
                await self.receive(packet.Packet(encoded_packet=received))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                server.logger.exception("Unknown receive error")

        await ws.close()
        overflowed = ws.frames is not None and ws.frames.overflowed
        reason = server.reason.TRANSPORT_ERROR if overflowed else server.reason.TRANSPORT_CLOSE
        await self.close(wait=False, abort=True, reason=reason)
