"""`redis://host:port/db` or `redis+cluster://host:port`: history, ids, live fan-out and presence
in Redis, shared by replicas.

Each message gets its id and lands in two streams in one Lua script (atomic): its room's stream
and the stream of all rooms, both with the entry id `<id>-0`. The same script looks up and
records the message's key (`chat:key:<user>:<key>`, expiring after the dedupe window), so every
replica agrees on which of two posts with one key was first. An action (edit, delete,
reaction, topic) is an entry like a message, and the same script folds it, and a reply, into
the state kept beside the streams: a hash of the messages acted on or answered (id -> JSON),
a sorted set of users per message and emoji, a hash of topics, and the rooms' counts of
messages (CHAT, not deleted). With `--max-history` the script trims a room's stream itself,
back to the limit once it holds SLACK times it, so that it knows which messages the count
loses; the state of the messages trimmed stays in place. The history's epoch is a key set
once (`SET NX`): a Redis that comes back empty gets a new one from the first replica to look.
Key names, and what a cluster changes, are in chat/store/redis_keys.py.

Every replica follows the all-rooms stream with XREAD BLOCK and tells its listener of each
entry in order, its own included; the stream, not pub/sub, is the source of truth, so a
replica that reconnects resumes where it stopped. An append returns once its own entry has come
round (as the other stores do, after the listener heard it), so the ACK takes its place among
the room's messages. Ids start again at 1 when Redis lost its data: an append waits for its
id in the history of its epoch, never for a smaller id of an older one.

The same XREAD follows the presence stream, whose JOIN and LEAVE go to the rooms
(chat/store/redis_presence.py).
"""

import asyncio
import dataclasses
import heapq
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chat.errors import ConfigError, StoreUnavailable
from chat.model import (
    CHAT,
    DELETE,
    EDIT,
    REACTION,
    REACTION_USERS,
    READ,
    TOPIC,
    Current,
    Draft,
    Reaction,
    RoomSummary,
    Stored,
    Unread,
    stored_from,
)
from chat.store.base import (
    DEDUPE_WINDOW,
    FIRST_PAGE,
    PAGE_SIZE,
    PRESENCE_INTERVAL,
    PRESENCE_TIMEOUT,
    SLACK,
    UNREAD_LIMIT,
    Listener,
    new_epoch,
    next_page_size,
)
from chat.store.redis_keys import ERRORS, Client, Keys, client, is_cluster
from chat.store.redis_presence import RedisPresence
from chat.tasks import cancel_and_wait

log = logging.getLogger("chat.store.redis")

BLOCK_MS = 1000
SOCKET_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)

IS_MESSAGE = """
-- Whether a stream entry {id, fields} is a message (CHAT) that `states` has not deleted.
local function is_message(entry, states)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'kind' then return false end
  end
  local raw = redis.call('HGET', states, string.match(entry[1], '^%d+'))
  return not (raw and cjson.decode(raw).deleted)
end
"""

# KEYS: next_id, all-rooms stream, room stream, rooms set, epoch, states, topics, counts, total;
# then, for a REACTION, its emoji's users on the message (for a READ, the read markers); last,
# when there is a key, the key's record.
# ARGV: room, user, text, replica, origin, max per room (0: all), key, dedupe window in ms, an
# epoch for a Redis that has none, kind, target id, reply_to, removed (0, 1), and for a DELETE
# the prefix of its message's reaction keys. With a limit, the all-rooms stream keeps about
# limit x rooms entries. An action (or a reply) changes the state of its message in the same
# script, so every replica, and a store opened later, read the same state. The counts change
# only once they are made (the total exists): until then, COUNT_ALL makes them from the streams.
# Returns {id, micros, epoch}, or {'id:micros', epoch} of the first message with the key.
APPEND = (
    f"local CHAT, EDIT, DELETE, REACTION, READ, TOPIC = {CHAT}, {EDIT}, {DELETE}, {REACTION},"
    f" {READ}, {TOPIC}\n"
    f"local SHOWN, SLACK = {REACTION_USERS}, {SLACK}\n"
    + IS_MESSAGE
    + """
local epoch = redis.call('GET', KEYS[5])
if not epoch then
  redis.call('SET', KEYS[5], ARGV[9])
  epoch = ARGV[9]
end
local record = ARGV[7] ~= '' and KEYS[#KEYS]
if record then
  local first = redis.call('GET', record)
  if first then return {first, epoch} end
end
local id = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local micros = now[1] * 1000000 + now[2]
local entry = id .. '-0'
local kind = tonumber(ARGV[10])
local fields = {'room', ARGV[1], 'user', ARGV[2], 'text', ARGV[3], 'at', micros,
                'replica', ARGV[4], 'origin', ARGV[5]}
for i, name in ipairs({'kind', 'target', 'reply', 'removed'}) do
  if ARGV[9 + i] ~= '0' then  -- a plain message's entry stays as it was
    table.insert(fields, name)
    table.insert(fields, ARGV[9 + i])
  end
end
if record then
  redis.call('SET', record, string.format('%d:%d', id, micros), 'PX', ARGV[8])
  table.insert(fields, 'key')
  table.insert(fields, ARGV[7])
end
local counting = redis.call('EXISTS', KEYS[9]) == 1
local function count(change)
  if counting and change ~= 0 then
    redis.call('HINCRBY', KEYS[8], ARGV[1], change)
    redis.call('INCRBY', KEYS[9], change)
  end
end
local limit = tonumber(ARGV[6])
redis.call('SADD', KEYS[4], ARGV[1])
if limit > 0 then
  redis.call('XADD', KEYS[3], entry, unpack(fields))
  local over = redis.call('XLEN', KEYS[3]) - limit
  if limit + over > limit * SLACK then  -- back to the limit, the messages trimmed counted out
    local taken = 0
    for _, old in ipairs(redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', over)) do
      if is_message(old, KEYS[6]) then taken = taken + 1 end
    end
    redis.call('XTRIM', KEYS[3], 'MAXLEN', limit)
    count(-taken)
  end
  local total = limit * redis.call('SCARD', KEYS[4])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', total, entry, unpack(fields))
else
  redis.call('XADD', KEYS[3], entry, unpack(fields))
  redis.call('XADD', KEYS[2], entry, unpack(fields))
end
if kind == CHAT then count(1) end

-- The state of the message acted on (or answered), as the memory store keeps it: nothing
-- when it is no message (CHAT) its room keeps.
local function react(state, users)
  local emoji, user = ARGV[3], ARGV[2]
  local reactions = state.reactions or {}
  local found, index
  for i, reaction in ipairs(reactions) do
    if reaction[1] == emoji then found, index = reaction, i end
  end
  if ARGV[13] == '1' then
    if redis.call('ZREM', users, user) == 0 or not found then return false end
    found[2] = found[2] - 1
    if found[2] == 0 then
      table.remove(reactions, index)
    else
      for _, listed in ipairs(found[3]) do
        if listed == user then  -- the next user in line takes its place
          found[3] = redis.call('ZRANGE', users, 0, SHOWN - 1)
          break
        end
      end
    end
  else
    if redis.call('ZADD', users, 'NX', id, user) == 0 then return false end
    if not found then
      found = {emoji, 0, {}}
      table.insert(reactions, found)
    end
    found[2] = found[2] + 1
    if #found[3] < SHOWN then table.insert(found[3], user) end
  end
  state.reactions = reactions
  return true
end

local function apply()
  local target = kind == CHAT and ARGV[12] or ARGV[11]
  local kept = redis.call('XRANGE', KEYS[3], target .. '-0', target .. '-0')[1]
  if not kept then return end
  for i = 1, #kept[2], 2 do
    if kept[2][i] == 'kind' then return end
  end
  if kind == READ then
    local marker = ARGV[2] .. ':' .. ARGV[1]
    if tonumber(redis.call('HGET', KEYS[10], marker) or '0') < tonumber(target) then
      redis.call('HSET', KEYS[10], marker, target)
    end
    return
  end
  local raw = redis.call('HGET', KEYS[6], target)
  local state = raw and cjson.decode(raw) or {}
  if kind == CHAT then
    state.replies = (state.replies or 0) + 1
  elseif kind == EDIT then
    state.text, state.edited = ARGV[3], string.format('%d', micros)
  elseif kind == DELETE then
    if not state.deleted then count(-1) end
    state.text, state.deleted = '', true
    for _, reaction in ipairs(state.reactions or {}) do
      redis.call('DEL', ARGV[14] .. reaction[1])
    end
    state.reactions = nil
  elseif kind == REACTION then
    if not react(state, KEYS[10]) then return end
  end
  redis.call('HSET', KEYS[6], target, cjson.encode(state))
end

if kind == TOPIC then
  redis.call('HSET', KEYS[7], ARGV[1], ARGV[3])
elseif kind ~= CHAT or ARGV[12] ~= '0' then
  apply()
end
return {id, micros, epoch}
"""
)

# KEYS: rooms set, states, counts, total. ARGV: the room streams' prefix.
# Makes the counts from every room's stream, once: nothing when the total exists. One script,
# so no append runs meanwhile; it reads every entry kept, once for a Redis written before the
# counts (the streams are not in KEYS: on a cluster, they share the hash tag of those that are).
COUNT_ALL = (
    IS_MESSAGE
    + f"local PAGE = {PAGE_SIZE}\n"
    + """
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local total = 0
local rooms = redis.call('SCARD', KEYS[1]) > 0 and redis.call('SMEMBERS', KEYS[1]) or {}
for _, room in ipairs(rooms) do  -- a new Redis: no room, and no read of the names
  local messages, start = 0, '-'
  while start do
    local page = redis.call('XRANGE', ARGV[1] .. room, start, '+', 'COUNT', PAGE)
    for _, entry in ipairs(page) do
      if is_message(entry, KEYS[2]) then messages = messages + 1 end
    end
    start = #page == PAGE and '(' .. page[#page][1]
  end
  if messages > 0 then redis.call('HSET', KEYS[3], room, messages) end
  total = total + messages
end
redis.call('SET', KEYS[4], total)
return 1
"""
)

# KEYS: read markers, states. ARGV: the room streams' prefix, the user, then the rooms.
# Each room's marker, and its messages of others after it, read page by page from the marker
# on until UNREAD_LIMIT are counted: one script for every room, so one round trip (on a cluster
# the streams share the hash tag of the keys, as for COUNT_ALL). Returns {read_id, count, ...}.
UNREAD = (
    f"local PAGE, LIMIT = {PAGE_SIZE}, {UNREAD_LIMIT}\n"
    + """
local user, found = ARGV[2], {}
for i = 3, #ARGV do
  local read_id = redis.call('HGET', KEYS[1], user .. ':' .. ARGV[i]) or '0'
  local count, start = 0, (tonumber(read_id) + 1) .. '-0'
  while start and count < LIMIT do
    local page = redis.call('XRANGE', ARGV[1] .. ARGV[i], start, '+', 'COUNT', PAGE)
    local others = {}  -- the ids of others' messages (entries with no kind) on the page
    for _, entry in ipairs(page) do
      local fields, theirs = entry[2], false
      for f = 1, #fields, 2 do
        if fields[f] == 'kind' then theirs = false break end
        if fields[f] == 'user' then theirs = fields[f + 1] ~= user end
      end
      if theirs then table.insert(others, string.match(entry[1], '^%d+')) end
    end
    if #others > 0 then  -- the deleted ones not: one look-up for the page's states
      for _, raw in ipairs(redis.call('HMGET', KEYS[2], unpack(others))) do
        if not (raw and cjson.decode(raw).deleted) then count = count + 1 end
      end
    end
    start = #page == PAGE and '(' .. page[#page][1]
  end
  table.insert(found, read_id)
  table.insert(found, math.min(count, LIMIT))
end
return found
"""
)

# KEYS: the user's bucket (a hash: tokens, at). ARGV: rate per second, burst.
# Returns 1 when a token was taken, 0 when the bucket is empty. Redis's clock, so every
# replica counts alike; the key expires once the bucket would be full again.
TAKE_TOKEN = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = redis.call('TIME')
local at = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local before = tonumber(state[2]) or at
tokens = math.min(burst, tokens + math.max(0, at - before) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return taken
"""


Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them without decode_responses: id, fields."""
Waiting = list[tuple[int, int, asyncio.Future[None]]]
"""Appends waiting for their id to come round: a heap by id; the number tells apart appends
waiting for one id (repeats of a key)."""


class RedisStore:
    """One client for commands (never retried: an append must not run twice), one for XREAD."""

    def __init__(
        self,
        url: str,
        max_history: int,
        dedupe_window: float = DEDUPE_WINDOW,
        presence_interval: float = PRESENCE_INTERVAL,
        presence_timeout: float = PRESENCE_TIMEOUT,
    ) -> None:
        self.epoch = ""
        self._url = url
        self._keys = Keys.for_url(url)
        self._max_history = max_history
        self._dedupe_ms = max(1, int(dedupe_window * 1000))
        self._replica = secrets.token_hex(8)  # tells this replica's entries from the others'
        no_retry = Retry(NoBackoff(), 0)
        self._client: Client
        if is_cluster(url):
            # The cluster's pools fail a command when full instead of waiting: the gate waits.
            self._client = client(
                url,
                max_connections=MAX_CONNECTIONS,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                retry=no_retry,
            )
        else:
            # A blocking pool: a burst of appends waits for a free connection instead of failing.
            self._client = aioredis.Redis(
                connection_pool=BlockingConnectionPool.from_url(
                    url,
                    max_connections=MAX_CONNECTIONS,
                    timeout=SOCKET_TIMEOUT,
                    socket_timeout=SOCKET_TIMEOUT,
                    socket_connect_timeout=SOCKET_TIMEOUT,
                    retry=no_retry,
                )
            )
        self._gate = asyncio.Semaphore(MAX_CONNECTIONS)
        self._reader = client(
            url,
            socket_timeout=SOCKET_TIMEOUT + BLOCK_MS / 1000,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=no_retry,
        )
        self._append = self._client.register_script(APPEND)
        self._count_all = self._client.register_script(COUNT_ALL)
        self._unread = self._client.register_script(UNREAD)
        self._take_token = self._client.register_script(TAKE_TOKEN)
        self.presence = RedisPresence(
            self._client, self._keys, self._replica, presence_interval, presence_timeout
        )
        self._listeners: list[Listener] = []
        self._last_entry = "0-0"
        self._last_move = "0-0"  # the newest JOIN or LEAVE the rooms were told of
        self._delivered = 0  # the newest id this replica's listeners have been told of
        self._waiting: dict[str, Waiting] = {}  # by the epoch of the history the ids are in
        self._left_behind: set[str] = set()  # epochs of histories Redis lost since the start
        self._tickets = itertools.count()
        self._follower: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        max_history: int = 0,
        dedupe_window: float = DEDUPE_WINDOW,
        presence_interval: float = PRESENCE_INTERVAL,
        presence_timeout: float = PRESENCE_TIMEOUT,
    ) -> "RedisStore":
        """Connects and starts following the all-rooms stream from its current end. The first
        store opened on a Redis written before the counts makes them: one script that reads
        every entry kept, which holds up Redis meanwhile."""
        try:
            store = cls(url, max_history, dedupe_window, presence_interval, presence_timeout)
        except (ValueError, *ERRORS) as error:
            raise ConfigError(f"bad Redis URL {url!r}: {error}") from error
        keys = store._keys
        try:
            store.epoch = await _epoch_of(store._client, keys)
            await store._make_counts()  # from here on, the appends keep them
            newest = cast(Entries, await store._client.xrevrange(keys.all, count=1))
            moved = cast(Entries, await store._client.xrevrange(keys.moves, count=1))
            await store.presence.start()
        except ERRORS as error:
            await store._close_clients()
            raise StoreUnavailable(f"Redis at {url} does not answer: {error}") from error
        if newest:
            store._last_entry = newest[0][0].decode()
            store._delivered = _entry_id(newest[0][0])
        if moved:
            store._last_move = moved[0][0].decode()
        store._follower = asyncio.create_task(store._follow(), name="redis-follower")
        return store

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def check(self) -> None:
        try:
            await self._client.ping()
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error

    async def append(self, draft: Draft) -> Stored:
        keys = [
            self._keys.next_id,
            self._keys.all,
            self._keys.room(draft.room),
            self._keys.rooms,
            self._keys.epoch,
            self._keys.states,
            self._keys.topics,
            self._keys.counts,
            self._keys.total,
        ]
        if draft.kind == REACTION:
            keys.append(self._keys.reactions(draft.target_id, draft.text))
        elif draft.kind == READ:
            keys.append(self._keys.read_ids)
        if draft.key:
            keys.append(self._keys.message(draft.user, draft.key))
        args: list[str | int] = [
            draft.room,
            draft.user,
            draft.text,
            self._replica,
            draft.origin,
            self._max_history,
            draft.key,
            self._dedupe_ms,
            new_epoch(),
            draft.kind,
            draft.target_id,
            draft.reply_to,
            int(draft.removed),
            self._keys.reactions(draft.target_id, "") if draft.kind == DELETE else "",
        ]
        try:
            async with self._gate:
                result = await self._append(keys=keys, args=args)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis did not take the message: {error}") from error
        repeat = len(result) == 2
        id_, micros = map(int, result[0].split(b":")) if repeat else map(int, result[:2])
        await self._delivery_of(id_, result[-1].decode())
        stored = stored_from(draft, id_, datetime.fromtimestamp(micros / 1e6, UTC))
        return dataclasses.replace(stored, repeat=True) if repeat else stored

    async def append_all(self, drafts: Sequence[Draft]) -> list[Stored]:
        """One after the other: scripts sent at once on the pool's connections could run out of
        order."""
        return [await self.append(draft) for draft in drafts]

    async def _delivery_of(self, id_: int, epoch: str) -> None:
        """Waits until the listeners were told of message `id_` of the history `epoch` and of
        every one before it.

        The listeners queue the sender's ACK with the room's messages, so another replica's
        message that took a smaller id just before ours reaches the sender first. A message of
        a history this replica has left behind (Redis lost it) will never come round.
        """
        if epoch == self.epoch and self._delivered >= id_:
            return
        if epoch != self.epoch and epoch in self._left_behind:
            raise StoreUnavailable(f"Redis lost its data and message {id_} with it; send again")
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting.setdefault(epoch, []), (id_, next(self._tickets), future))
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await future
        except TimeoutError:
            raise StoreUnavailable(
                f"message {id_} is stored but live delivery stalled; resume after id {id_ - 1}"
            ) from None

    async def history(
        self, room: str | None, after_id: int = 0, limit: int = 0, *, entries: bool = False
    ) -> AsyncIterator[Stored]:
        key = self._keys.all if room is None else self._keys.room(room)
        try:
            if limit and limit < await self._client.xlen(key):
                after_id = max(after_id, await self._newest_id(key, limit, entries) - 1)
            start = f"({after_id}-0" if after_id else "-"
            size = FIRST_PAGE
            while True:
                async with self._gate:
                    read = cast(Entries, await self._client.xrange(key, min=start, count=size))
                if not read:
                    return
                start = "(" + read[-1][0].decode()
                page = [self._stored(entry, fields) for entry, fields in read]
                del read  # the page holds what it needs of them
                for message in page if entries else await self._as_now(page):
                    yield message
                if len(page) < size:
                    return
                size = next_page_size(page)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis history read failed: {error}") from error

    async def _newest_id(self, key: str, nth: int, entries: bool) -> int:
        """The id of the `nth` newest entry of a stream that holds more than that (without
        `entries`: of the messages as `history` gives them, or the oldest entry when there are
        fewer), read back page by page: a large `limit` holds one page in memory, not the whole
        history."""
        end = "+"
        while True:
            count = min(nth, PAGE_SIZE) if entries else PAGE_SIZE
            page = cast(Entries, await self._client.xrevrange(key, max=end, count=count))
            stored = [self._stored(entry, fields) for entry, fields in page]
            kept = [m.id for m in (stored if entries else await self._as_now(stored))]
            if len(kept) >= nth:
                return kept[nth - 1]
            nth -= len(kept)
            if len(page) < count:  # no more: all of them
                return _entry_id(page[-1][0]) if page else 1
            end = "(" + page[-1][0].decode()

    async def _as_now(self, page: list[Stored]) -> list[Stored]:
        """The messages (CHAT) of `page` with their text now, the deleted ones left out."""
        messages = [message for message in page if message.kind == CHAT]
        states = await self._states(messages)
        now = []
        for message, state in zip(messages, states, strict=True):
            if state is None:
                now.append(message)
            elif not state.deleted:
                now.append(state.message)
        return now

    async def _states(self, messages: Sequence[Stored]) -> list[Current | None]:
        """The state of each of `messages` (None: nothing acted on it), in one HMGET."""
        if not messages:
            return []
        async with self._gate:
            raw = cast(
                list[bytes | None],
                await self._client.hmget(self._keys.states, [m.id for m in messages]),
            )
        return [
            _current(message, state) if state is not None else None
            for message, state in zip(messages, raw, strict=True)
        ]

    async def message(self, id: int) -> Current | None:
        try:
            async with self._gate:
                found = cast(Entries, await self._client.xrange(self._keys.all, id, id, count=1))
            if not found or (message := self._stored(*found[0])).kind != CHAT:
                return None
            (state,) = await self._states([message])
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return state or Current(message)

    async def page(
        self, room: str, *, before_id: int = 0, after_id: int = 0, limit: int, thread: int = 0
    ) -> tuple[list[Current], bool]:
        """Reads the room's stream in its direction until the page (and one more message) is
        found; a thread's search back stops at its first message."""
        key = self._keys.room(room)
        forward = bool(after_id)
        bound = f"({after_id}-0" if forward else f"({before_id}-0" if before_id else "+"
        picked: list[Stored] = []
        try:
            while len(picked) <= limit:
                count = max(limit + 1, FIRST_PAGE)
                async with self._gate:
                    if forward:
                        reply = await self._client.xrange(key, min=bound, count=count)
                    else:
                        reply = await self._client.xrevrange(key, max=bound, count=count)
                read = cast(Entries, reply)
                for entry, fields in read:
                    message = self._stored(entry, fields)
                    if message.kind == CHAT and (
                        not thread or message.id == thread or message.reply_to == thread
                    ):
                        picked.append(message)
                if len(read) < count or (
                    thread and not forward and _entry_id(read[-1][0]) <= thread
                ):
                    break
                bound = "(" + read[-1][0].decode()
            more = len(picked) > limit
            picked = picked[:limit]
            if not forward:
                picked.reverse()
            states = await self._states(picked)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis history read failed: {error}") from error
        return [
            state or Current(message) for message, state in zip(picked, states, strict=True)
        ], more

    async def keyed(self, user: str, key: str) -> tuple[int, datetime] | None:
        try:
            async with self._gate:
                first = await self._client.get(self._keys.message(user, key))
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        if first is None:
            return None
        id_, micros = map(int, cast(bytes, first).split(b":"))
        return id_, datetime.fromtimestamp(micros / 1e6, UTC)

    async def reacted(self, id: int, emoji: str, user: str) -> bool:
        try:
            return await self._client.zscore(self._keys.reactions(id, emoji), user) is not None
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error

    async def read_id(self, user: str, room: str) -> int:
        try:
            async with self._gate:
                raw = await self._client.hget(self._keys.read_ids, f"{user}:{room}")
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return int(raw or 0)

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, Unread]:
        """One script for them all (UNREAD)."""
        listed = list(rooms)
        if not listed:
            return {}
        keys = self._keys
        try:
            async with self._gate:
                found = await self._unread(
                    keys=[keys.read_ids, keys.states], args=[keys.room(""), user, *listed]
                )
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return {
            room: Unread(int(read_id), int(count))
            for room, read_id, count in zip(listed, found[::2], found[1::2], strict=True)
        }

    async def summaries(self, names: Collection[str]) -> list[RoomSummary]:
        """One pipeline for all of them: whether the counts are made, and each room's size,
        newest entry, topic and messages."""
        listed = list(names)
        if not listed:
            return []
        keys = self._keys
        try:
            async with self._gate:
                pipeline = self._client.pipeline(transaction=False)
                pipeline.exists(keys.total)
                for name in listed:
                    pipeline.xlen(keys.room(name))
                    pipeline.xrevrange(keys.room(name), count=1)
                    pipeline.hget(keys.topics, name)
                    pipeline.hget(keys.counts, name)
                counted, *replies = await pipeline.execute()
            if not counted:
                await self._make_counts()
                return await self.summaries(listed)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return [
            RoomSummary(name, (topic or b"").decode(), _entry_id(newest[0][0]), int(count or 0))
            for name, size, newest, topic, count in zip(
                listed, *(replies[n::4] for n in range(4)), strict=True
            )
            if size
        ]

    async def count(self, room: str | None = None) -> int:
        """One read of the counts the append script keeps (the first, where they are not
        made yet, makes them)."""
        keys = self._keys
        try:
            async with self._gate:
                pipeline = self._client.pipeline(transaction=False)
                pipeline.get(keys.total)
                if room is not None:
                    pipeline.hget(keys.counts, room)
                total, *in_room = await pipeline.execute()
            if total is None:
                await self._make_counts()
                return await self.count(room)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return int(in_room[0] or 0) if in_room else int(total)

    async def _make_counts(self) -> None:
        """Makes the rooms' counts from their streams, unless a replica has made them."""
        keys = self._keys
        async with self._gate:
            await self._count_all(
                keys=[keys.rooms, keys.states, keys.counts, keys.total], args=[keys.room("")]
            )

    async def rooms(self) -> set[str]:
        try:
            names = cast(set[bytes], await self._client.smembers(self._keys.rooms))
            return {name.decode() for name in names}
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error

    async def room_count(self) -> int:
        try:
            return int(await self._client.scard(self._keys.rooms))
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error

    async def stored_rooms(self, names: Collection[str]) -> set[str]:
        if not names:
            return set()
        listed = list(names)
        try:
            found = await self._client.smismember(self._keys.rooms, listed)
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return {name for name, stored in zip(listed, found, strict=True) if stored}

    async def take_token(self, user: str, rate: float, burst: int) -> bool:
        try:
            async with self._gate:
                taken = await self._take_token(keys=[Keys.bucket(user)], args=[rate, burst])
        except ERRORS as error:
            raise StoreUnavailable(f"Redis does not answer: {error}") from error
        return bool(taken)

    async def close(self) -> None:
        if self._follower is not None:
            await cancel_and_wait([self._follower])  # redis-py can swallow a cancel mid-read
            self._follower = None
        await self.presence.close()
        self._listeners.clear()
        for waiting in self._waiting.values():  # appends that will never come round now
            for _, _, heard in waiting:
                if not heard.done():
                    heard.set_exception(StoreUnavailable("the Redis store is closed"))
        self._waiting.clear()
        await self._close_clients()

    async def _close_clients(self) -> None:
        await self._client.aclose()
        await self._reader.aclose()

    async def _follow(self) -> None:
        """Tells listeners of every entry of the all-rooms stream, in order, and the rooms of
        every JOIN and LEAVE, across outages."""
        failures = 0
        keys = self._keys
        while True:
            try:
                if failures:
                    await self._notice_lost_data()
                streams: dict[Any, Any] = {keys.all: self._last_entry, keys.moves: self._last_move}
                reply = cast(
                    list[tuple[bytes, Entries]],
                    await self._reader.xread(streams, block=BLOCK_MS, count=PAGE_SIZE),
                )
            except ERRORS as error:
                if failures == 0:
                    await self._drop_connections()
                    lost = StoreUnavailable(f"lost Redis: {error}")
                    for listener in self._listeners:
                        listener.lost(lost)
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1
                continue
            failures = 0
            for stream, entries in reply or ():
                if stream.decode() == keys.moves:
                    for entry, fields in entries:
                        self._last_move = entry.decode()
                        self.presence.heard(fields)
                    continue
                for entry, fields in entries:
                    message = self._stored(entry, fields)
                    self._last_entry = entry.decode()
                    self._delivered = message.id
                    for listener in self._listeners:
                        listener.stored(message)
            waiting = self._waiting.get(self.epoch, [])
            while waiting and waiting[0][0] <= self._delivered:
                _, _, future = heapq.heappop(waiting)
                if not future.done():
                    future.set_result(None)

    async def _drop_connections(self) -> None:
        """Pooled connections to the Redis that went away are dead too; dropping them now
        spares the first appends after its return a stale socket (a cluster's client drops
        them itself)."""
        if isinstance(self._client, aioredis.Redis):
            await self._client.connection_pool.disconnect()

    async def _notice_lost_data(self) -> None:
        """After an outage: a Redis that came back without its data starts the ids again, under
        a new epoch, and following from the old position would skip every new message.
        Appends waiting for an id of the old history will not see it come round: they fail."""
        epoch = await _epoch_of(self._reader, self._keys)
        if epoch == self.epoch:
            return
        log.warning("Redis lost its data (history %s is now %s); following anew", self.epoch, epoch)
        self._left_behind.add(self.epoch)
        self.epoch = epoch
        self._last_entry = self._last_move = "0-0"
        self._delivered = 0
        for old in [key for key in self._waiting if key != epoch]:
            for id_, _, future in self._waiting.pop(old):
                if not future.done():
                    future.set_exception(
                        StoreUnavailable(f"Redis lost its data and message {id_} with it")
                    )

    def _stored(self, entry: bytes, fields: dict[bytes, bytes]) -> Stored:
        ours = fields.get(b"replica", b"").decode() == self._replica
        return Stored(
            id=_entry_id(entry),
            room=fields[b"room"].decode(),
            user=fields[b"user"].decode(),
            text=fields[b"text"].decode(),
            sent_at=datetime.fromtimestamp(int(fields[b"at"]) / 1e6, UTC),
            origin=int(fields.get(b"origin", b"0")) if ours else 0,
            key=fields.get(b"key", b"").decode() if ours else "",
            kind=int(fields.get(b"kind", b"0")),
            target_id=int(fields.get(b"target", b"0")),
            reply_to=int(fields.get(b"reply", b"0")),
            removed=b"removed" in fields,
        )


async def _epoch_of(client: Client, keys: Keys) -> str:
    """The history's epoch, made now by this replica when Redis has none (a new or emptied
    Redis); the first replica to set it wins."""
    await client.set(keys.epoch, new_epoch(), nx=True)
    return cast(bytes, await client.get(keys.epoch)).decode()


def _current(message: Stored, raw: bytes) -> Current:
    """`message` with the state the append script keeps of it (JSON)."""
    state = json.loads(raw)
    text, edited = state.get("text"), state.get("edited")
    return Current(
        dataclasses.replace(message, text=text) if text is not None else message,
        datetime.fromtimestamp(int(edited) / 1e6, UTC) if edited else None,
        bool(state.get("deleted")),
        tuple(
            Reaction(emoji, count, tuple(users))
            for emoji, count, users in state.get("reactions") or ()
        ),
        state.get("replies", 0),
    )


def _entry_id(entry: Any) -> int:
    text = entry.decode() if isinstance(entry, bytes) else str(entry)
    return int(text.partition("-")[0])
