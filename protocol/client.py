"""A small async client of the hub for bots and scripts, over python-socketio.

    async with TaskhubClient("http://127.0.0.1:8080", token="thb_...") as hub:
        hub.on("task:updated", lambda event: print(event.seq, event.task.title))
        joined = await hub.join_board(board_id)
        await hub.update_task(task.id, task.version, title="Renamed")
        await hub.wait()

It logs in (an API token, or, on a hub that lets people's tokens in from clients
that are not browsers, email and password with refresh; elsewhere that connect
raises `Forbidden`, `bot_token_required`), calls the client
events of protocol/catalog.py with their payload structs, raises an error ack as
the HubError of its code (`VersionConflict.task` is the current task), and
decodes server events into the structs of protocol/models.py.

It reconnects by itself (python-socketio's backoff with jitter). Writes carry an
`op_id`, so one left unacknowledged by a dropped connection is sent again after
the reconnect and applied once. Each joined board is joined again with
`since_seq`: the handlers get the events they missed, in seq order and once (or,
when too far behind, the snapshot handlers get the board). A connection the hub
closes on purpose (a revoked token) is not reopened; `wait()` raises why. One
exception: a node that is shutting down (a deploy) closes its connections with
`server_shutdown`, and those are reopened as after a drop, after python-socketio's
short random delay, to the same URL (a load balancer sends them to a live node).

Logged in with email and password, it renews the access token shortly before it
expires and hands it to the live connection (`auth:refresh`), so the hub does not
close that connection with `token_expired`.

Handlers run one at a time, in the order events arrived; one that awaits a call
of this client is fine, one that waits for another event would wait forever.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, overload

import aiohttp
import msgspec
import socketio
from msgspec import UNSET

from protocol.chat_client import ChatApi
from protocol.credentials import Credentials
from protocol.errors import (
    Forbidden,
    HubError,
    Internal,
    NotFound,
    Unauthorized,
    Unavailable,
    asks_to_reconnect,
    from_dict,
)
from protocol.event_stream import EventStream
from protocol.events import ClientEvent, ServerEvent
from protocol.models import (
    Member,
    PublicUser,
    Reminder,
    ReminderMethod,
    TaskEvent,
    TaskStatus,
    TriageItem,
    User,
)
from protocol.payloads import (
    AuthRefresh,
    BoardJoin,
    BoardLeave,
    BoardMembers,
    ChatHistory,
    ChatJoin,
    NotificationsList,
    NotificationsRead,
    Payload,
    PresenceList,
    ReminderCreate,
    ReminderDismiss,
    ReminderList,
    TaskChanges,
    TaskCreate,
    TaskDelete,
    TaskMove,
    TaskUpdate,
    TriageCreate,
)
from protocol.replies import (
    BoardJoined,
    ChannelJoined,
    HistoryPage,
    MembersListed,
    NotificationsPage,
    PresenceListed,
    RemindersListed,
    UnreadCount,
)
from protocol.serializers import Serializer

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Callable[..., Any])

# Fields that make a resend harmless; the client fills them in when left empty.
IDEMPOTENCY_FIELDS = ("op_id", "client_msg_id")

# Events a resend cannot apply twice, sent again as they are after a reconnect.
REPEATABLE_EVENTS = frozenset(
    {
        ClientEvent.BOARD_JOIN,
        ClientEvent.BOARD_LEAVE,
        ClientEvent.PRESENCE_LIST,
        ClientEvent.NOTIFICATIONS_LIST,
        ClientEvent.NOTIFICATIONS_READ,
        ClientEvent.REMINDERS_LIST,
        ClientEvent.BOARD_MEMBERS,
        ClientEvent.CHAT_CHANNELS,
        ClientEvent.CHAT_JOIN,
        ClientEvent.CHAT_LEAVE,
        ClientEvent.CHAT_HISTORY,
        ClientEvent.CHAT_TYPING,
        ClientEvent.CHAT_READ,
    }
)


# A live connection's access token is refreshed this long before it expires, or at half
# its life when that is shorter (the web page's rule); a failed try is retried this often.
REFRESH_BEFORE = 60.0
REFRESH_RETRY = 5.0


class _Dropped(Exception):
    """The connection dropped before the ack arrived."""


class _SocketClient(socketio.AsyncClient):
    """python-socketio's client, which can be told to reconnect after a disconnect the
    server made on purpose.

    python-socketio reconnects after a dropped connection only: a server's DISCONNECT
    means "stay away". A stopping node disconnects its clients on purpose too, but asks
    them to come back (`server_shutdown`); for that one, the disconnect handler sets
    `come_back`, and once python-socketio has finished the disconnect (its Engine.IO
    connection closed), the reconnection loop starts as it would after a drop: same
    backoff and jitter, same `shutdown()` to stop it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.come_back = False

    async def _handle_disconnect(self, namespace: str) -> None:
        await super()._handle_disconnect(namespace)
        reconnecting = self._reconnect_task  # type: ignore[has-type]  # untyped in socketio
        if self.come_back and not self.connected and not reconnecting:
            self.come_back = False
            self._reconnect_task = self.start_background_task(self._handle_reconnect)


class _Claims(msgspec.Struct):
    exp: float
    iat: float


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _expiry_of(token: str) -> tuple[float, float] | None:
    """When an access token expires (epoch seconds) and how long it was issued for, read
    from its JWT payload unverified (the hub verifies it); None for a token that is no
    JWT (a bot's)."""
    try:
        part = token.split(".")[1]
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        claims = msgspec.json.decode(raw, type=_Claims)
    except (IndexError, ValueError):  # binascii.Error and msgspec's errors are ValueErrors
        return None
    return claims.exp, claims.exp - claims.iat


class TaskhubClient:
    """One connection to the hub; give `token` (a bot's API token or an access
    token) or `email` and `password`. Use once: connect, work, close."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        email: str | None = None,
        password: str | None = None,
        serializer: Serializer | str = Serializer.MSGPACK,
        call_timeout: float = 10.0,
        reconnection_delay: float = 0.5,
        reconnection_delay_max: float = 10.0,
        transports: tuple[str, ...] = ("websocket",),
    ) -> None:
        self.url = url.rstrip("/")
        self.serializer = Serializer(serializer)
        self.call_timeout = call_timeout
        self._credentials = Credentials(self.url, token=token, email=email, password=password)
        self._transports = list(transports)
        # The python-socketio client underneath, for what this class does not cover.
        self.sio = _SocketClient(
            reconnection=True,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            serializer=self.serializer.python_socketio,
            handle_sigint=False,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_event)
        self._events = EventStream(self._rejoin, self._rejoin_channel, self._older_messages)
        # the chat events: hub.chat.send(...), hub.chat.join(...), ...
        self.chat = ChatApi(self.call, self._events)
        self._http: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._ready = asyncio.Event()  # connected, or closed (then _closed is set too)
        self._closed = asyncio.Event()
        self._closing = False
        self._error: HubError | None = None  # why the client stopped, unless closed
        self._refusal: HubError | None = None  # the reason of the latest refused connect
        self._connected_once = False
        self._stopper: asyncio.Task[None] | None = None
        self._farewell: HubError | None = None  # the reason `connection:closing` gave
        self._token_expiry: tuple[float, float] | None = None  # of the connection's token
        self._renewing = asyncio.Lock()  # one renewal at a time: a refresh token is spent once
        self._refresher: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def user(self) -> User | None:
        """Who this client is, when it logged in with email and password."""
        return self._credentials.user

    async def connect(self) -> None:
        """Log in and connect; a refusal raises its HubError (`Unauthorized`, ...)."""
        self._http = aiohttp.ClientSession()
        try:
            await self._credentials.token(self._http)
            await self.sio.connect(
                self.url,
                auth=self._auth,
                transports=self._transports,
                socketio_path=self.serializer.socketio_path,
                wait_timeout=self.call_timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            await self._http.close()
            raise self._refusal or Unavailable(f"cannot connect to {self.url}: {exc}") from None
        except BaseException:
            await self._http.close()
            raise
        if self._credentials.renewable:
            self._refresher = asyncio.create_task(
                self._keep_token_fresh(), name="taskhub-client-refresh"
            )

    async def close(self) -> None:
        self._closing = True
        self.sio.come_back = False  # a farewell's disconnect in progress: stay away
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._stopper is not None:
            await self._stopper
        await self.sio.shutdown()
        if self.sio.connected:  # a reconnect attempt in flight succeeded meanwhile
            await self.sio.disconnect()
        self._closed.set()
        self._ready.set()
        await self._events.close()
        if self._http is not None:
            await self._http.close()
        # python-engineio closes the aiohttp session it made for the transport when a
        # connection ends, but not when a connect attempt failed (a refused reconnect
        # during an outage, say): it would be left to the garbage collector
        engine = self.sio.eio
        if engine.http is not None and not engine.external_http and not engine.http.closed:
            await engine.http.close()

    async def wait(self) -> None:
        """Until the client is closed; raises the reason if the hub ended it."""
        await self._closed.wait()
        if self._error is not None:
            raise self._error

    async def __aenter__(self) -> TaskhubClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- server events ---------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Call `handler(data)` (sync or async) for each `event`; data is decoded per
        protocol.event_stream.SERVER_EVENT_TYPES (`task:*` get a TaskEvent). Usable
        as a decorator."""

        def register(h: H) -> H:
            self._events.add_handler(event, h)
            return h

        return register(handler) if handler is not None else register

    def on_snapshot(self, handler: H) -> H:
        """Call `handler(BoardJoined)` when a reconnect was too far behind for the
        missed events and the hub sent the whole board instead."""
        self._events.add_snapshot_handler(handler)
        return handler

    def last_seq(self, board_id: uuid.UUID | str) -> int | None:
        """The seq of the latest event of a joined board this client has seen."""
        return self._events.last_seq(_uuid(board_id))

    # -- client events ---------------------------------------------------------

    async def call(
        self, event: str, payload: Payload | Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """Send any client event of the catalog and return its ack's `data`; an error
        ack raises the HubError of its code."""
        if isinstance(payload, msgspec.Struct):
            names = payload.__struct_fields__
            filled = {
                name: uuid.uuid4()
                for name in IDEMPOTENCY_FIELDS
                if name in names and getattr(payload, name) is None
            }
            data = msgspec.to_builtins(msgspec.structs.replace(payload, **filled))
            keyed = any(name in names for name in IDEMPOTENCY_FIELDS)
        else:
            data = dict(payload)
            keyed = any(data.get(name) for name in IDEMPOTENCY_FIELDS)
        resendable = keyed or event in REPEATABLE_EVENTS
        return await self._request(event, data, resendable=resendable, timeout=timeout)

    async def join_board(
        self, board_id: uuid.UUID | str, since_seq: int | None = None
    ) -> BoardJoined:
        """Join a board's room; from then on its events are delivered in seq order and
        caught up after reconnects. The reply's events are not delivered to handlers."""
        board_id = _uuid(board_id)
        self._events.joining(board_id)
        try:
            data = await self.call(
                ClientEvent.BOARD_JOIN, BoardJoin(board_id=board_id, since_seq=since_seq)
            )
            joined = msgspec.convert(data, BoardJoined)
        except BaseException:
            await self._events.joined(board_id, None)
            raise
        await self._events.joined(board_id, joined)
        return joined

    async def leave_board(self, board_id: uuid.UUID | str) -> None:
        board_id = _uuid(board_id)
        self._events.left(board_id)
        await self.call(ClientEvent.BOARD_LEAVE, BoardLeave(board_id=board_id))

    async def presence(self, board_id: uuid.UUID | str) -> list[PublicUser]:
        data = await self.call(ClientEvent.PRESENCE_LIST, PresenceList(board_id=_uuid(board_id)))
        return msgspec.convert(data, PresenceListed).users

    async def create_task(self, board_id: uuid.UUID | str, title: str, **fields: Any) -> TaskEvent:
        """`fields` are those of TaskCreate (description, status, assignee_id, ...)."""
        payload = TaskCreate(board_id=_uuid(board_id), title=title, **fields)
        return await self._task_write(ClientEvent.TASK_CREATE, payload)

    async def update_task(
        self, task_id: uuid.UUID | str, base_version: int, **changes: Any
    ) -> TaskEvent:
        """`changes` are fields of TaskChanges; a clash raises VersionConflict."""
        payload = TaskUpdate(
            task_id=_uuid(task_id), base_version=base_version, changes=TaskChanges(**changes)
        )
        return await self._task_write(ClientEvent.TASK_UPDATE, payload)

    async def move_task(
        self,
        task_id: uuid.UUID | str,
        base_version: int,
        position: float,
        status: TaskStatus | None = None,
    ) -> TaskEvent:
        payload = TaskMove(
            task_id=_uuid(task_id),
            base_version=base_version,
            position=position,
            status=UNSET if status is None else status,
        )
        return await self._task_write(ClientEvent.TASK_MOVE, payload)

    async def delete_task(
        self, task_id: uuid.UUID | str, base_version: int | None = None
    ) -> TaskEvent:
        payload = TaskDelete(task_id=_uuid(task_id), base_version=base_version)
        return await self._task_write(ClientEvent.TASK_DELETE, payload)

    async def notifications(self, before: str | None = None, limit: int = 50) -> NotificationsPage:
        data = await self.call(
            ClientEvent.NOTIFICATIONS_LIST, NotificationsList(before=before, limit=limit)
        )
        return msgspec.convert(data, NotificationsPage)

    async def read_notifications(
        self, ids: list[uuid.UUID] | None = None, *, every: bool = False
    ) -> int:
        """Mark `ids` read, or all of them with `every=True`; returns the unread count."""
        payload = NotificationsRead(ids=ids, all=True if every else None)
        data = await self.call(ClientEvent.NOTIFICATIONS_READ, payload)
        return msgspec.convert(data, UnreadCount).unread

    async def create_reminder(
        self,
        task_id: uuid.UUID | str,
        remind_at: datetime,
        method: ReminderMethod = ReminderMethod.IN_APP,
    ) -> Reminder:
        payload = ReminderCreate(task_id=_uuid(task_id), remind_at=remind_at, method=method)
        return msgspec.convert(await self.call(ClientEvent.REMINDERS_CREATE, payload), Reminder)

    async def reminders(self, task_id: uuid.UUID | str) -> list[Reminder]:
        data = await self.call(ClientEvent.REMINDERS_LIST, ReminderList(task_id=_uuid(task_id)))
        return msgspec.convert(data, RemindersListed).reminders

    async def dismiss_reminder(self, reminder_id: uuid.UUID | str) -> Reminder:
        payload = ReminderDismiss(reminder_id=_uuid(reminder_id))
        return msgspec.convert(await self.call(ClientEvent.REMINDERS_DISMISS, payload), Reminder)

    async def _task_write(self, event: ClientEvent, payload: Payload) -> TaskEvent:
        return msgspec.convert(await self.call(event, payload), TaskEvent)

    async def members(self, board_id: uuid.UUID | str) -> list[Member]:
        """Who belongs to a board (`board:members`)."""
        data = await self.call(ClientEvent.BOARD_MEMBERS, BoardMembers(board_id=_uuid(board_id)))
        return msgspec.convert(data, MembersListed).members

    async def report(self, board_id: uuid.UUID | str, title: str, **fields: Any) -> TriageItem:
        """File a triage item (`triage:create`); `fields` as in TriageCreate."""
        payload = TriageCreate(board_id=_uuid(board_id), title=title, **fields)
        data = await self.call(ClientEvent.TRIAGE_CREATE, payload)
        return msgspec.convert(data["item"], TriageItem)

    async def _rejoin_channel(self, channel_id: uuid.UUID) -> ChannelJoined:
        """A chat catch-up's join: resent across reconnects, waiting as long as it takes."""
        payload = msgspec.to_builtins(ChatJoin(channel_id=channel_id, limit=100))
        data = await self._request(ClientEvent.CHAT_JOIN, payload, resendable=True, timeout=None)
        return msgspec.convert(data, ChannelJoined)

    async def _older_messages(self, channel_id: uuid.UUID, before: int) -> HistoryPage:
        payload = msgspec.to_builtins(ChatHistory(channel_id=channel_id, before=before, limit=100))
        data = await self._request(ClientEvent.CHAT_HISTORY, payload, resendable=True, timeout=None)
        return msgspec.convert(data, HistoryPage)

    async def _rejoin(self, board_id: uuid.UUID, since_seq: int | None) -> BoardJoined:
        """A catch-up's join: resent across reconnects, waiting as long as it takes."""
        payload = msgspec.to_builtins(BoardJoin(board_id=board_id, since_seq=since_seq))
        data = await self._request(ClientEvent.BOARD_JOIN, payload, resendable=True, timeout=None)
        return msgspec.convert(data, BoardJoined)

    # -- requests --------------------------------------------------------------

    async def _request(
        self, event: str, data: Any, *, resendable: bool, timeout: float | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        limit = timeout if timeout is not None else self.call_timeout
        deadline = loop.time() + limit
        while True:
            await self._until_ready(deadline)
            acked: asyncio.Future[Any] = loop.create_future()

            def ack(*args: Any, acked: asyncio.Future[Any] = acked) -> None:
                if not acked.done():
                    acked.set_result(args[0] if args else None)

            self._pending.add(acked)
            try:
                try:
                    await self.sio.emit(event, data, callback=ack)
                except socketio.exceptions.BadNamespaceError:
                    raise _Dropped from None
                reply = await asyncio.wait_for(acked, max(deadline - loop.time(), 0))
            except _Dropped:
                if resendable:
                    continue  # after the reconnect, with the same op_id
                raise Unavailable(f"the connection dropped before {event} was acked") from None
            except TimeoutError:
                raise Unavailable(f"{event} got no ack within {limit} s") from None
            finally:
                self._pending.discard(acked)
            if not isinstance(reply, dict) or "ok" not in reply:
                raise Internal(f"{event} got a malformed ack: {reply!r:.200}")
            if reply["ok"]:
                return reply.get("data")
            error = reply.get("error")
            raise from_dict(error if isinstance(error, dict) else {})

    async def _until_ready(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(self._ready.wait(), max(remaining, 0))
        except TimeoutError:
            raise self._refusal or Unavailable("not connected to the hub") from None
        if self._closed.is_set():
            raise self._error or Unavailable("the client is closed")

    # -- connection events -----------------------------------------------------

    async def _auth(self) -> dict[str, str]:
        """The connect auth, asked for again at every reconnect."""
        assert self._http is not None
        try:
            async with self._renewing:
                token = await self._credentials.token(self._http)
        except Unauthorized as exc:
            self._stop(exc)  # the password no longer works
        except HubError as exc:
            log.warning("could not renew the access token: %s", exc)
        else:
            self._token_expiry = _expiry_of(token)
            return {"token": token}
        return {}

    async def _keep_token_fresh(self) -> None:
        """Hand the live connection a new access token before its own expires.

        Ends when a renewal is refused (the password changed, the login was ended):
        the hub then closes the connection when its token expires, and `wait()`
        raises why, as it does for any connection whose token nobody refreshed.
        """
        while True:
            await self._ready.wait()
            if self._closed.is_set() or self._token_expiry is None:
                return
            expires_at, lifetime = self._token_expiry
            delay = expires_at - min(REFRESH_BEFORE, lifetime / 2) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # a reconnect meanwhile may have brought a newer token
            try:
                await self._refresh_token()
            except (Unauthorized, Forbidden) as exc:
                log.warning("the access token cannot be refreshed, the hub will close: %s", exc)
                return
            except HubError as exc:
                log.warning("could not refresh the access token, retrying: %s", exc)
                await asyncio.sleep(REFRESH_RETRY)

    async def _refresh_token(self) -> None:
        assert self._http is not None
        async with self._renewing:
            self._credentials.expire()  # still valid, but not for long enough
            token = await self._credentials.token(self._http)
        await self.call(ClientEvent.AUTH_REFRESH, AuthRefresh(access_token=token))
        # A reconnect racing this one connected with this token or a newer one (it
        # waited for the lock), so this expiry is never later than the connection's.
        self._token_expiry = _expiry_of(token)

    def _on_connect_error(self, data: Any = None) -> None:
        refusal = (
            from_dict(data)
            if isinstance(data, dict) and "code" in data
            else Unavailable(f"connect failed: {data}")
        )
        self._refusal = refusal
        if isinstance(refusal, Unauthorized) and self._credentials.renewable:
            self._credentials.expire()  # the next attempt logs in again
        elif isinstance(refusal, Unauthorized | Forbidden | NotFound) and self._connected_once:
            self._stop(refusal)  # retrying cannot help (a revoked API token)

    async def _on_connect(self) -> None:
        reconnected = self._connected_once
        self._connected_once = True
        self._refusal = None
        self._farewell = None
        self.sio.come_back = False
        if reconnected:
            self._events.reconnected()  # before any event of the new connection (no await)
        self._ready.set()

    async def _on_disconnect(self, reason: str = "") -> None:
        self._ready.clear()
        for acked in self._pending:
            if not acked.done():
                acked.set_exception(_Dropped())
        if reason == self.sio.reason.SERVER_DISCONNECT and not self._closing:
            if asks_to_reconnect(self._farewell):
                # the node is stopping: come back as after a drop; the writes left
                # unacked are sent again and the boards caught up by seq
                self.sio.come_back = True
                return
            # python-socketio does not reconnect after the server closed on purpose
            self._error = (
                self._error or self._farewell or Unavailable("the hub closed this connection")
            )
            self._events.stop()
            self._closed.set()
            self._ready.set()

    def _stop(self, error: HubError) -> None:
        """End the client from inside the reconnection loop: no more attempts."""
        self._error = self._error or error
        if self._stopper is None and not self._closing:
            self._stopper = asyncio.create_task(self.sio.shutdown(), name="taskhub-client-stop")
        self._events.stop()
        self._closed.set()
        self._ready.set()

    async def _on_event(self, event: str, *args: Any) -> None:
        data = args[0] if len(args) == 1 else list(args)
        if event == ServerEvent.CONNECTION_CLOSING and isinstance(data, dict):
            # before any await: the disconnect that follows at once must find it
            self._farewell = from_dict(data)
        await self._events.receive(event, data)
