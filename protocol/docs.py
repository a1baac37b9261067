"""Render docs/PROTOCOL.md from the catalog and the payload structs."""

from __future__ import annotations

import json

import msgspec

from protocol.catalog import CLIENT_EVENTS, SERVER_EVENTS, WHOLE_CONNECTION
from protocol.errors import ERRORS_BY_CODE

HEADER = """# Taskhub socket protocol

Generated from `protocol/` by `taskhub docs`; do not edit by hand.

Socket.IO v5 over Engine.IO v4 at `/socket.io/`, websocket or HTTP long-polling.
The same protocol in msgpack (python-socketio `serializer="msgpack"`, JavaScript
`socket.io-msgpack-parser`) is served at `/socket.io-msgpack/`; rooms hold
clients of both kinds and every server event reaches both. Payloads are the
same on both: ids, dates and times travel as strings (msgpack timestamps,
extension types and binary values are `invalid_payload`).
Connect with `auth={"token": "<access token>"}` (from `POST /api/auth/login`),
or, for a bot, with its API token (`thb_...`, from `POST /api/bots/{id}/tokens`).
A refused connection gets a `connect_error` whose data is
`{"code": "unauthorized", "message": ..., "details": {"reason": ...}}`; a bot
token's reason is `invalid_token`, `token_revoked`, `token_expired` or
`account_inactive`; an access token's is `invalid_token` (a bad signature, an
algorithm other than the configured one, `alg: none`, a wrong `aud` or `iss`,
a future `nbf`, a missing or non-UUID `sub`, any `crit` header),
`token_expired`, `account_inactive` or `session_revoked` (the login was logged
out or its refresh token reused). An access token is let in from a browser only
(the handshake has an `Origin` or `Sec-Fetch-Site` header) unless the hub sets
`USER_TOKENS_WITHOUT_ORIGIN`: from any other client it is refused
`{"code": "forbidden", ..., "details": {"reason": "bot_token_required"}}`, and
such clients connect with a bot token. The server closes a connection when its
token expires (unless `auth:refresh` gave it a newer one), when its bot
token is revoked, and within seconds when its login ends (`session_revoked`:
logged out, or its refresh token reused) or its account is deactivated
(`account_inactive`), and when its node shuts down (`server_shutdown`, code
`unavailable`: reconnect, see `connection:closing`); `connection:closing` tells
the client why just before.

A bot token carries scopes (`chat:read`, `chat:write`, `tasks:read`,
`tasks:write`). Each event below names the scope it needs; a bot token without
it gets `forbidden` (`details.scope` names it) and nothing happens. People's
access tokens have every scope; board roles apply to bots and people alike.

Every client event takes exactly one payload object and should ask for an ack.
Any payload may carry `request_id` (1-64 characters of letters, digits and
`._:-`): it becomes the correlation id of everything the event causes (task
event rows, Kafka record headers, audit records, log lines).
The ack is `{"ok": true, "data": ...}` or
`{"ok": false, "error": {"code": ..., "message": ..., "details": ...}}`.
A connection's events are handled at once, each on its own, so two sent without
waiting for the first's ack may finish in either order, except those marked *in
the order sent* (room joins and leaves, typing, `auth:refresh`): one
connection's marked events about the same board or channel (for `auth:refresh`,
the connection itself) are handled one at a time, in the order it sent them, so a
`board:leave` sent right after its `board:join` leaves, and the last token sent
is the one that rules. Events about other boards or channels do not wait for them.
A packet that breaks Socket.IO itself (a frame that is no packet, malformed
JSON or msgpack, data nested more than 32 levels deep, an event that is not a
list starting with its name, a namespace never connected, a binary packet
announcing other than 1 to 10 attachments, non-string msgpack keys) closes the
connection, as Node's socket.io does on a parser error; no handler sees it. An
ack for an id the server never asked about is ignored. A CONNECT to a namespace
other than `/` gets `connect_error` `not_found`, and a second CONNECT to `/` on
the same connection `conflict`; the connection stays as it was.
Payloads are checked strictly: unknown fields, wrong types, missing fields,
out-of-bound values and non-UUID ids get `invalid_payload` naming the field; a
payload over `MAX_PAYLOAD_BYTES` (64 KiB by default) gets `payload_too_large`.
The connection stays up and nothing is written.

Rate limits, per user and per address and shared by every node, count connects,
writes, chat and password logins (REST: `429` with `Retry-After`); each event
below that counts lists `rate_limited`, and the defaults are in the README's
configuration table. Over one, the ack (or the `connect_error`) is
`rate_limited` with `details.action` (`connect`, `write`, `chat`, `login`) and
`details.retry_after` (seconds), and nothing happens; an invalid payload counts
too. A user has at most `MAX_CONNECTIONS_PER_USER` connections at once; one
more is refused `rate_limited` with `details.reason` `too_many_connections`.

Writes may carry `op_id` (a UUID made by the client). A write repeated with the
same `op_id` by the same user is applied once and the repeat gets the first
ack again; resend unacknowledged writes after a reconnect with their `op_id`.
Acks of resends are kept for 24 hours.

Server events of a board carry the board's `seq`, gap-free per board. A client
keeps the highest seq it applied; on reconnect it sends `board:join` with
`since_seq` and gets exactly the events it missed (or a snapshot when too far
behind). Events can arrive twice around a join: drop any seq already applied.
"""


def _schema(kind: type) -> str:
    (schema,), components = msgspec.json.schema_components([kind])
    body = {"payload": schema, "definitions": components}
    return json.dumps(body, indent=2, sort_keys=True)


def render() -> str:
    parts = [HEADER, "## Error codes\n"]
    parts.append("| code | HTTP status (REST) | meaning |\n|---|---|---|")
    for code, cls in ERRORS_BY_CODE.items():
        parts.append(f"| `{code.value}` | {cls.http_status} | {cls.default_message} |")
    parts.append("\n## Client events\n")
    for spec in CLIENT_EVENTS.values():
        parts.append(f"### `{spec.event.value}`\n")
        parts.append(spec.summary + "\n")
        parts.append(f"Ack data: {spec.ack}.\n")
        scope = f"`{spec.scope}`" if spec.scope else "none (any connection)"
        parts.append(f"Bot token scope: {scope}.\n")
        if spec.in_sent_order == WHOLE_CONNECTION:
            parts.append(
                "Handled *in the order sent*, one at a time, among the connection's "
                "events so marked for the connection as a whole.\n"
            )
        elif spec.in_sent_order:
            parts.append(
                "Handled *in the order sent* among the connection's events so marked "
                f"with the same `{spec.in_sent_order}`.\n"
            )
        parts.append("Error codes: " + ", ".join(f"`{c}`" for c in spec.error_codes()) + ".\n")
        parts.append("Payload (JSON Schema):\n")
        parts.append("```json\n" + _schema(spec.payload) + "\n```\n")
    parts.append("## Server events\n")
    parts.append("| event | room | meaning |\n|---|---|---|")
    for server in SERVER_EVENTS:
        parts.append(f"| `{server.event.value}` | `{server.room}` | {server.summary} |")
    return "\n".join(parts) + "\n"
