"""Starts the moto server with its DynamoDB backend serialized.

DynamoDB transactions are serializable: no reader sees half of one, and
conflicting ones never interleave. moto applies a transaction's actions one by
one and rolls back by restoring a table snapshot, without a lock, so under
concurrent requests it can lose a committed write or keep half of a cancelled
one. One lock around every DynamoDB (and DynamoDB Streams) backend operation
restores DynamoDB's guarantees; the HTTP server stays threaded.

Usage: emulator.py [moto_server arguments], e.g. emulator.py -H 127.0.0.1 -p 5000
"""

import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodbstreams.models import DynamoDBStreamsBackend

_lock = threading.RLock()


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

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.exit(main())
