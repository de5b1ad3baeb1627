"""The AWS emulator of tests, the local stack and the bench: the moto server
(moto 5.2.5) with three changes to its DynamoDB backend, so that it keeps the
DynamoDB semantics the code relies on.

1. Serialized. DynamoDB transactions are serializable: no reader sees half of
   one, and conflicting ones never interleave. moto applies a transaction's
   actions one by one without a lock, so under concurrent requests it could
   lose a committed write or keep half of a cancelled one. One lock around
   every DynamoDB (and DynamoDB Streams) backend operation restores DynamoDB's
   guarantees (of 50 concurrent identical conditional transactions exactly one
   succeeds); the HTTP server stays threaded.

2. Cancelled transactions leave nothing behind, and the stream keeps flowing.
   moto (DynamoDBBackend.transact_write_items) deep-copies every table a
   transaction names before running it and, when the transaction is
   cancelled, puts the copies in place of the tables. A table's copy carries a
   copy of its stream shard. The shard iterators handed out before (kept in
   DynamoDBStreamsBackend.shard_iterators, each holding the StreamShard object
   it was made from, and every NextShardIterator made from that same object)
   keep reading the old shard: it holds the stream records of the cancelled
   transaction's actions that ran before the failing one, and no write ever
   reaches it again. A poller that follows NextShardIterator, as Lambda's event
   source mapping does, gets the cancelled transaction's records and then
   nothing more, while the new shard gives the next writes the sequence
   numbers of the dropped records. Here a transaction instead saves the items
   its actions name (and the length of each stream) before it runs, and if it
   fails puts those items back and drops the stream records it added: tables
   and shards stay the same objects, a cancelled transaction leaves no item
   change and no stream record, and sequence numbers continue after the last
   record a reader could see. It also makes a transaction O(actions) instead
   of O(actions x items in the table, stream records included).

3. Partition-scoped Query. moto answers a Query on the table's own key by
   walking every item of the table; here it walks only the items under the
   queried partition key (the same results, in the same order).

Cancellation reasons are moto's own (with ReturnValuesOnConditionCheckFailure
= ALL_OLD they carry the existing item).

Usage: emulator.py [moto_server arguments], e.g. emulator.py -H 127.0.0.1 -p 5000
"""

import copy
import sys
import threading

import moto.dynamodb.models as models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend

_lock = threading.RLock()


# 2. Transactions undone item by item.


class _NoTableCopies:
    """moto's module-level `copy` in moto.dynamodb.models, except that whole
    tables are not copied: its rollback then puts each table back in its own
    place, and the items are restored by `transact_write_items` below."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


models.copy = _NoTableCopies()
_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _save(backend, transact_items):
    """The items the actions name as they are now, and each stream's length."""
    saved, streams = [], {}
    for action in transact_items:
        try:
            op = next(iter(action.values()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, StopIteration, AttributeError, TypeError):
            continue  # moto itself refuses a malformed action before changing anything
        had_partition = hash_key in table.items
        current = table.get_item(hash_key, range_key)
        saved.append((table, hash_key, range_key, had_partition, copy.deepcopy(current)))
        if table.stream_shard is not None:
            streams.setdefault(id(table.stream_shard), (table.stream_shard, len(table.stream_shard.items)))
    return saved, streams


def _restore(saved, streams):
    for table, hash_key, range_key, had_partition, item in reversed(saved):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            partition = table.items.get(hash_key)
            if partition is not None:
                partition.pop(range_key, None)
                if not partition and not had_partition:
                    del table.items[hash_key]
        else:
            table.items[hash_key][range_key] = item
    for shard, length in streams.values():
        del shard.items[length:]


def transact_write_items(self, transact_items):
    with _lock:
        saved, streams = _save(self, transact_items)
        try:
            return _moto_transact_write_items(self, transact_items)
        except BaseException:
            _restore(saved, streams)
            raise


transact_write_items.__doc__ = _moto_transact_write_items.__doc__
DynamoDBBackend.transact_write_items = transact_write_items


# 3. A Query on the table's key walks its partition only.

_moto_query = Table.query


def query(self, hash_key, *args, **kwargs):
    index_name = kwargs["index_name"] if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _moto_query(self, hash_key, *args, **kwargs)
    bucket = self.items.get(hash_key)
    if bucket is None:
        partition = []
    elif self.range_key_attr is not None:
        partition = list(bucket.values())
    else:
        partition = [bucket]
    self.all_items = lambda: iter(partition)  # shadows the method for this call only
    try:
        return _moto_query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


Table.query = query


# 1. Every backend operation under one lock (transact_write_items included).


def _serialized(method):
    def operation(self, *args, **kwargs):
        with _lock:
            return method(self, *args, **kwargs)

    operation.__name__ = method.__name__
    operation.__doc__ = method.__doc__
    return operation


for backend in (DynamoDBBackend, DynamoDBStreamsBackend):
    for name, member in list(vars(backend).items()):
        if callable(member) and not name.startswith("_"):
            setattr(backend, name, _serialized(member))

from moto.server import main  # noqa: E402  (after the patches, on purpose)

if __name__ == "__main__":
    sys.exit(main())
