"""bcrypt, always off the event loop: one hash at cost 12 takes ~250 ms of CPU."""

from __future__ import annotations

import asyncio

import bcrypt

# Checked against when the account does not exist, so a miss costs what a hit does.
_dummy_hashes: dict[int, bytes] = {}


async def hash_password(password: str, rounds: int) -> str:
    hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt(rounds))
    return hashed.decode()


async def check_password(password: str, password_hash: str | None, rounds: int) -> bool:
    """The same work whether or not the account exists, so timing tells nothing."""
    # bcrypt reads 72 bytes at most; registration refuses longer passwords.
    candidate = password.encode()[:72]
    if password_hash is None and rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = (await hash_password("timing-equaliser", rounds)).encode()
    target = password_hash.encode() if password_hash else _dummy_hashes[rounds]
    matches = await asyncio.to_thread(bcrypt.checkpw, candidate, target)
    return matches and password_hash is not None
