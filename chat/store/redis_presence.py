"""Presence across replicas, kept in Redis: who has live streams where, on every replica.

Each replica counts its own streams in process (`room|user` -> streams; `|` alone is its open
streams, `room|` its history followers in a room) and a writer task sends the changes, in
order and batched, to one Lua script. The script adds them to the replica's share
(`streams:<replica>`) and to the totals every reader sees: live streams by room
(`connected`), room memberships by user (`users`) and streams by user in each room
(`online:<room>`). A user's count in a room going 0 -> 1 puts a JOIN on the `presence` stream,
1 -> 0 a LEAVE: the script that moved it is the one replica that announces it. Every replica
follows that stream beside the messages' (chat/store/redis.py) and tells its rooms.

Posting a message never touches presence: only streams opening, closing or entering a room do.

A replica beats every `interval` seconds: it moves its own deadline (`replicas`, a sorted set by
Redis's clock, so replicas' clocks need not agree) `timeout` seconds ahead, and takes away the
share of every replica whose deadline passed, with a LEAVE for each user that had no other
stream. A replica killed with -9 is gone from every list within timeout + interval seconds. A
replica that finds itself gone (it stalled past its deadline, or Redis lost its data) sends its
whole share again; so does one whose write failed, once Redis answers.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from chat.contract import Kind
from chat.errors import StoreUnavailable
from chat.store.presence import Announce
from chat.store.redis_keys import ERRORS, Client, Keys
from chat.tasks import cancel_and_wait

log = logging.getLogger("chat.store.redis")

MOVES_KEPT = 10_000
"""About how many JOIN and LEAVE the presence stream keeps for replicas catching up."""
ALL_ROOMS = "|"
"""The field of `connected` that counts every live stream: no room is named so."""

# Shared by both scripts. change(prefix, replica, n, room, user, stream) adds n streams (n < 0:
# takes them, never below what the replica has) of `user` in `room` to the replica's share and
# to the totals; room '' is the stream itself, user '' a history follower.
CHANGE = """
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
local function add(key, field, n)
  local after = redis.call('HINCRBY', key, field, n)
  if after <= 0 then redis.call('HDEL', key, field) end
  return after
end
local function change(prefix, replica, n, room, user, stream)
  local field = room .. '|' .. user
  local share = prefix .. 'streams:' .. replica
  if n < 0 then
    n = math.max(n, -tonumber(redis.call('HGET', share, field) or '0'))
  end
  if n == 0 then return end
  add(share, field, n)
  add(prefix .. 'connected', room == '' and '|' or room, n)
  if user == '' or room == '' then return end
  add(prefix .. 'users', user, n)
  local after = add(prefix .. 'online:' .. room, user, n)
  local kind = nil
  if after > 0 and after == n then kind = 'join' elseif after <= 0 then kind = 'leave' end
  if kind then
    redis.call('XADD', prefix .. 'presence', 'MAXLEN', '~', MOVES_KEPT, '*', 'kind', kind,
               'room', room, 'user', user, 'replica', replica, 'stream', stream)
  end
end
local function split(field)
  local bar = string.find(field, '|', 1, true)
  return string.sub(field, 1, bar - 1), string.sub(field, bar + 1)
end
""".replace("MOVES_KEPT", str(MOVES_KEPT))

# KEYS: replicas, presence stream, this replica's share, connected, users (all in one slot).
# ARGV: prefix, replica, sync (1: ARGV holds the whole share, 0: changes), timeout in ms, then
# (n, room, user, stream) for each change or each part of the share.
# Returns 1; 0 when the replica is not registered and sends changes (it must send its share).
UPDATE = (
    CHANGE
    + """
local prefix, replica, timeout = ARGV[1], ARGV[2], tonumber(ARGV[4])
if ARGV[3] == '0' then
  if not redis.call('ZSCORE', KEYS[1], replica) then return 0 end
  for i = 5, #ARGV, 4 do
    change(prefix, replica, tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  end
  return 1
end
redis.call('ZADD', KEYS[1], now_ms() + timeout, replica)
local have = {}
local flat = redis.call('HGETALL', KEYS[3])
for j = 1, #flat, 2 do have[flat[j]] = tonumber(flat[j + 1]) end
for i = 5, #ARGV, 4 do
  local field = ARGV[i + 1] .. '|' .. ARGV[i + 2]
  change(prefix, replica, tonumber(ARGV[i]) - (have[field] or 0), ARGV[i + 1], ARGV[i + 2], '0')
  have[field] = nil
end
for field, count in pairs(have) do
  local room, user = split(field)
  change(prefix, replica, -count, room, user, '0')
end
return 1
"""
)

# KEYS: replicas, presence stream, connected, users. ARGV: prefix, replica, timeout in ms, and
# `beat` (move this replica's deadline, take away the replicas past theirs) or `leave` (take
# this replica's share away: it is stopping). Returns 1 when the replica was registered.
REAP = (
    CHANGE
    + """
local prefix, replica = ARGV[1], ARGV[2]
local alive = redis.call('ZSCORE', KEYS[1], replica)
local gone = {replica}
if ARGV[4] == 'beat' then
  local now = now_ms()
  if alive then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), replica) end
  gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
end
for _, dead in ipairs(gone) do
  local share = prefix .. 'streams:' .. dead
  local flat = redis.call('HGETALL', share)
  for j = 1, #flat, 2 do
    local room, user = split(flat[j])
    change(prefix, dead, -tonumber(flat[j + 1]), room, user, '0')
  end
  redis.call('DEL', share)
  redis.call('ZREM', KEYS[1], dead)
end
if alive then return 1 end
return 0
"""
)

Change = tuple[int, str, str, int]
"""Streams added (negative: taken), room ('': the stream itself), user ('': a follower), and
the stream (this replica's id, for the announcement to skip)."""


class RedisPresence:
    """This replica's streams, sent to Redis in the background; reads count every replica."""

    def __init__(
        self, client: Client, keys: Keys, replica: str, interval: float, timeout: float
    ) -> None:
        self.updates = 0
        """Round trips made to send stream changes (the benchmark counts them per message)."""
        self._client = client
        self._keys = keys
        self._replica = replica
        self._interval = interval
        self._timeout_ms = max(1, int(timeout * 1000))
        self._update = client.register_script(UPDATE)
        self._reap = client.register_script(REAP)
        self._announce: list[Announce] = []
        self._share: Counter[tuple[str, str]] = Counter()
        self._changes: list[Change] = []
        self._synced = False  # whether Redis holds this replica's share as sent so far
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # nothing waits to be sent
        self._settled.set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Registers this replica (raising the Redis error when it does not answer), then
        starts writing and beating."""
        await self._sync()
        self._tasks = [
            asyncio.create_task(self._write(), name="presence-writer"),
            asyncio.create_task(self._beat(), name="presence-heartbeat"),
        ]

    async def close(self) -> None:
        """Stops, and takes this replica's share away with LEAVEs (when Redis answers)."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        with contextlib.suppress(*ERRORS, TimeoutError):
            async with asyncio.timeout(self._interval):
                await self._reap(keys=self._reap_keys(), args=self._reap_args("leave"))

    def watch(self, announce: Announce) -> None:
        self._announce.append(announce)

    def opened(self, stream: int) -> None:
        self._change(1, "", "", stream)

    def closed(self, stream: int) -> None:
        self._change(-1, "", "", stream)

    def entered(self, room: str, user: str | None, stream: int) -> None:
        self._change(1, room, user or "", stream)

    def left(self, room: str, user: str | None, stream: int) -> None:
        self._change(-1, room, user or "", stream)

    def heard(self, fields: dict[bytes, bytes]) -> None:
        """A JOIN or LEAVE from the presence stream, from any replica."""
        kind = Kind.JOIN if fields[b"kind"] == b"join" else Kind.LEAVE
        ours = fields[b"replica"].decode() == self._replica
        stream = int(fields[b"stream"]) if ours else 0
        room, user = fields[b"room"].decode(), fields[b"user"].decode()
        for announce in self._announce:
            announce(kind, room, user, stream)

    async def online(self, room: str | None = None) -> list[str]:
        key = self._keys.users if room is None else self._keys.online(room)
        names = cast(list[bytes], await self._read(lambda: self._client.hkeys(key)))
        return sorted(name.decode() for name in names)

    async def connected(self, room: str | None = None) -> int:
        count = await self._read(lambda: self._client.hget(self._keys.connected, room or ALL_ROOMS))
        return int(count or 0)

    async def connected_in(self, rooms: Iterable[str]) -> int:
        """Streams in any of `rooms`: a stream in two of them (it posted to another room) is
        counted twice, as replicas count no stream but their own."""
        rooms = list(rooms)
        if not rooms:
            return 0
        counts = await self._read(lambda: self._client.hmget(self._keys.connected, rooms))
        return min(sum(int(count or 0) for count in counts), await self.connected())

    async def active_rooms(self) -> set[str]:
        key = self._keys.connected
        names = cast(list[bytes], await self._read(lambda: self._client.hkeys(key)))
        return {name.decode() for name in names} - {ALL_ROOMS}

    async def _read(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """A read, once this replica's own changes are in (a client that opened a stream and
        asks at once counts it), or after an interval's worth of waiting for them; at once
        while they cannot be written (Redis refused the last write), which no wait would
        change."""
        if self._synced:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._settled.wait()
        try:
            return await command()
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error

    def _change(self, n: int, room: str, user: str, stream: int) -> None:
        key = (room, user)
        self._share[key] += n
        if self._share[key] <= 0:
            del self._share[key]
        self._changes.append((n, room, user, stream))
        self._settled.clear()
        self._wake.set()

    async def _write(self) -> None:
        """Sends what changed, in order: all that piled up during one round trip in the next."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self._synced:
                    await self._sync()
                elif self._changes:
                    changes, self._changes = self._changes, []
                    self.updates += 1
                    args: list[str | int] = [self._keys.prefix, self._replica, 0, self._timeout_ms]
                    for change in changes:
                        args.extend(change)
                    if not await self._update(keys=self._update_keys(), args=args):
                        await self._sync()  # this replica was taken for gone: all again
            except ERRORS as error:
                if self._synced:  # once per outage, not once per stream
                    log.warning("presence not sent to Redis (sent when it answers): %s", error)
                self._synced = False  # the next beat that gets through wakes this task
                await asyncio.sleep(self._interval)  # no round trip per change meanwhile
                continue
            if not self._changes:
                self._settled.set()

    async def _sync(self) -> None:
        """Sends this replica's whole share; Redis takes the difference to what it had."""
        self._changes.clear()  # the share holds them
        args: list[str | int] = [self._keys.prefix, self._replica, 1, self._timeout_ms]
        for (room, user), streams in self._share.items():
            args.extend((streams, room, user, 0))
        self.updates += 1
        await self._update(keys=self._update_keys(), args=args)
        self._synced = True

    async def _beat(self) -> None:
        """Every interval: this replica is alive, and the replicas past their deadline are not."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                alive = await self._reap(keys=self._reap_keys(), args=self._reap_args("beat"))
            except ERRORS as error:
                log.debug("presence beat failed: %s", error)
                self._synced = False
                continue
            if not alive or not self._synced:
                self._synced = False
                self._wake.set()

    def _update_keys(self) -> list[str]:
        keys = self._keys
        return [keys.replicas, keys.moves, keys.streams(self._replica), keys.connected, keys.users]

    def _reap_keys(self) -> list[str]:
        keys = self._keys
        return [keys.replicas, keys.moves, keys.connected, keys.users]

    def _reap_args(self, mode: str) -> list[str | int]:
        return [self._keys.prefix, self._replica, self._timeout_ms, mode]
