"""Long-running consumers of what storage/ wrote to the outbox (relay, bridge,
notifier, reminders, audit). The first of them arrives with the events issue."""
