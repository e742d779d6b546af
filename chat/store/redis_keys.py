"""The Redis store's key names, and how a store URL connects (one Redis, or a Redis Cluster).

On one Redis the keys start with `chat:`, as they always have, so an existing deployment's data
stays where it is. On a cluster they start with the hash tag `{chat}:`: every key a script
touches hashes to one slot, so the scripts run there whole (and all writes go to that slot's
node). Only the flood-control buckets, one key per script, spread over the cluster.
"""

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

CLUSTER_SCHEME = "redis+cluster"
ERRORS = (RedisError, RedisClusterException)
"""What a Redis or a cluster raises when it cannot answer (the cluster's own are no RedisError)."""

Client = aioredis.Redis | RedisCluster


@dataclass(frozen=True)
class Keys:
    """Every key of one chat's data; `prefix` is `chat:` or, on a cluster, `{chat}:`."""

    prefix: str

    @classmethod
    def for_url(cls, url: str) -> "Keys":
        return cls("{chat}:" if is_cluster(url) else "chat:")

    @property
    def next_id(self) -> str:
        return self.prefix + "next_id"

    @property
    def all(self) -> str:
        """The stream of every room's messages, which every replica follows."""
        return self.prefix + "all"

    @property
    def rooms(self) -> str:
        return self.prefix + "rooms"

    @property
    def epoch(self) -> str:
        return self.prefix + "epoch"

    def room(self, room: str) -> str:
        return self.prefix + "room:" + room

    @property
    def states(self) -> str:
        """A hash of the messages acted on or answered: id -> their state now (JSON)."""
        return self.prefix + "states"

    @property
    def counts(self) -> str:
        """A hash of the rooms' messages: room -> how many messages (CHAT) not deleted its
        stream keeps, as the append script keeps them."""
        return self.prefix + "counts"

    @property
    def total(self) -> str:
        """The sum of `counts`. Absent: the counts are still to be made from the streams (a
        Redis written before them, or emptied since), which the first count does."""
        return self.prefix + "count"

    @property
    def read_ids(self) -> str:
        """A hash of the read markers: `user:room` -> the message the user has read up to."""
        return self.prefix + "read_ids"

    @property
    def topics(self) -> str:
        """A hash of the rooms' topics: room -> topic."""
        return self.prefix + "topics"

    def reactions(self, id: int, emoji: str) -> str:
        """A sorted set of the users who put `emoji` on message `id`, by the id of the entry
        that put it there. With emoji '': what the script prefixes each emoji with to find
        them all (the same hash tag, so the same slot)."""
        return f"{self.prefix}reactions:{id}:{emoji}"

    def message(self, user: str, key: str) -> str:
        """Where a user's message key is recorded (user names have no colon)."""
        return f"{self.prefix}key:{user}:{key}"

    @staticmethod
    def bucket(user: str) -> str:
        """A user's flood-control bucket: no hash tag, so buckets spread over a cluster."""
        return "chat:rate:" + user

    @property
    def replicas(self) -> str:
        """Presence: a sorted set of replicas by the Redis time (ms) they count as gone at."""
        return self.prefix + "replicas"

    @property
    def moves(self) -> str:
        """Presence: the stream of JOIN and LEAVE, which every replica follows."""
        return self.prefix + "presence"

    @property
    def connected(self) -> str:
        """Presence: a hash of live streams by room (`|`: in all), over every replica."""
        return self.prefix + "connected"

    @property
    def users(self) -> str:
        """Presence: a hash of room memberships by user, over every replica."""
        return self.prefix + "users"

    def online(self, room: str) -> str:
        """Presence: a hash of one room's live streams by user, over every replica."""
        return self.prefix + "online:" + room

    def streams(self, replica: str) -> str:
        """Presence: one replica's share (`room|user` -> streams), taken away when it dies."""
        return self.prefix + "streams:" + replica


def is_cluster(url: str) -> bool:
    return url.partition("://")[0] == CLUSTER_SCHEME


def client(url: str, **options: Any) -> Client:
    """A client for `redis://host:port/db`, or for the cluster a `redis+cluster://host:port`
    names one node of (the client finds the others)."""
    if is_cluster(url):
        return RedisCluster.from_url("redis://" + url.partition("://")[2], **options)
    return aioredis.from_url(url, **options)
