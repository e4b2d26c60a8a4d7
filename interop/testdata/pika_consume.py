#!/usr/bin/python3
"""Receive one event that a troupe app publishes, with pika.

The script declares its own exclusive, server-named queue, binds it to the
app's exchange with the given routing key, prints "ready" and waits for one
message. It prints that message as one JSON line: routing key, exchange,
headers exactly as pika decoded them (with the Python type of each value),
the AMQP properties and the body as text. The queue goes away with the
connection.

The broker URL comes from the environment variable TROUPE_INTEROP_URL, so
that no password shows up in the process list.
"""

import argparse
import datetime
import json
import os
import sys

import pika


def jsonable(v):
    """Turn a header value as pika decodes it into something JSON can hold."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--exchange", required=True)
    p.add_argument("--routing-key", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    params = pika.URLParameters(os.environ["TROUPE_INTEROP_URL"])
    params.connection_attempts = 1
    params.socket_timeout = args.timeout
    params.blocked_connection_timeout = args.timeout

    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        queue = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
        # queue_bind is synchronous: once it returns, the binding is in place
        # and every later publish with the key reaches the queue.
        ch.queue_bind(queue=queue, exchange=args.exchange, routing_key=args.routing_key)
        print("ready", flush=True)

        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=args.timeout):
            if method is None:
                print("no message within %.0fs" % args.timeout, file=sys.stderr)
                sys.exit(1)
            headers = props.headers or {}
            out = {
                "exchange": method.exchange,
                "routing_key": method.routing_key,
                "headers": {k: jsonable(v) for k, v in headers.items()},
                "header_types": {k: type(v).__name__ for k, v in headers.items()},
                "properties": {
                    "content_type": props.content_type,
                    "message_id": props.message_id,
                    "type": props.type,
                    "timestamp": props.timestamp,
                    "delivery_mode": props.delivery_mode,
                },
                "body": body.decode("utf-8"),
            }
            break
        ch.cancel()
    finally:
        conn.close()

    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
