"""The wire contract of Taskhub: event names, payload structs, acks, error codes.

Nothing here imports the rest of Taskhub, so bots and other services can depend
on this package alone.
"""
