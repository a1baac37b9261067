"""docs/PROTOCOL.md is what the structs say (regenerate with `taskhub docs`)."""

from pathlib import Path

from protocol.catalog import CLIENT_EVENTS
from protocol.docs import render
from protocol.events import ClientEvent


def test_protocol_docs_are_current() -> None:
    committed = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    assert committed == render(), "run `.venv/bin/taskhub docs` and commit docs/PROTOCOL.md"


def test_every_client_event_is_documented() -> None:
    assert set(CLIENT_EVENTS) == set(ClientEvent)
    for event in ClientEvent:
        assert f"### `{event.value}`" in render()
