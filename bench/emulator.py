"""The bench's emulator: scripts/emulator.py (moto with its DynamoDB backend
serialized), with one change that only affects the emulator's speed.

moto makes TransactWriteItems undoable by deep-copying every table the
transaction names, once per action, before running it: a transaction costs
O(actions x items in the table, stream records included). On a table of a
few thousand items one transaction takes seconds, so a bench that writes
thousands of items would measure moto's copying and run into the SDK's
timeouts. Here the transaction instead saves the items its actions name
(and the length of each table's stream) and puts them back if it fails:
the same outcome for the client, and stream records of a cancelled
transaction are dropped at once (as DynamoDB never emits them).

moto also answers a Query on the table's own key by walking every item of
the table; here it walks only the items under the queried partition key
(the same results, in the same order).

Round trips and handler CPU do not depend on these changes; wall times and job
throughput measured against the emulator do.

Usage: emulator.py [moto_server arguments], e.g. emulator.py -H 127.0.0.1 -p 5000
"""

import copy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))

import emulator  # noqa: E402  (scripts/emulator.py: serializes the DynamoDB backend)
import moto.dynamodb.models as models  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402


class _NoTableCopies:
    """moto's module-level `copy`, except that whole tables are not copied."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


models.copy = _NoTableCopies()
_transact_write_items = DynamoDBBackend.transact_write_items


def _saved_items(backend, transact_items):
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
        current = table.get_item(hash_key, range_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
        if table.stream_shard is not None:
            streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
    return saved, streams


def _restore(saved, streams):
    for table, hash_key, range_key, item in reversed(saved):
        if range_key is not None:
            if item is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    for shard, length in streams.values():
        del shard.items[length:]


def transact_write_items(self, transact_items):
    with emulator._lock:
        saved, streams = _saved_items(self, transact_items)
        try:
            return _transact_write_items(self, transact_items)
        except Exception:
            _restore(saved, streams)
            raise


DynamoDBBackend.transact_write_items = transact_write_items

_query = Table.query


def query(self, hash_key, *args, **kwargs):
    index_name = kwargs["index_name"] if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    bucket = self.items.get(hash_key)
    if bucket is None:
        partition = []
    elif self.range_key_attr is not None:
        partition = list(bucket.values())
    else:
        partition = [bucket]
    self.all_items = lambda: iter(partition)  # shadows the method for this call only
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


Table.query = query

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
