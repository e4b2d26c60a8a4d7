#!/usr/bin/python3
"""Publish one CloudEvent in binary content mode to a troupe app with pika.

This is what a Python service outside the troupe app would do: it knows
only the wire format (an AMQP topic exchange "troupe.<app>", routing key
"<topic>.v<N>", CloudEvents attributes as "ce-" headers, JSON body), not
troupe. The event's id and time are made here, the Python way (uuid4, an
ISO 8601 time with microseconds and a "+00:00" offset), and printed on
stdout as one JSON line once the broker confirmed the publish.

The broker URL comes from the environment variable TROUPE_INTEROP_URL, so
that no password shows up in the process list.
"""

import argparse
import datetime
import json
import os
import sys
import uuid

import pika


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--exchange", required=True)
    p.add_argument("--routing-key", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--type", required=True)
    p.add_argument("--correlation-id", required=True)
    p.add_argument("--traceparent", default="")
    p.add_argument("--data", required=True, help="the event data, as JSON")
    p.add_argument(
        "--bytes-headers",
        action="store_true",
        help="send header values as bytes (AMQP byte arrays) rather than str "
        "(AMQP long strings), and the content type as a content-type header "
        "rather than the AMQP property",
    )
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    params = pika.URLParameters(os.environ["TROUPE_INTEROP_URL"])
    params.connection_attempts = 1
    params.socket_timeout = args.timeout
    params.blocked_connection_timeout = args.timeout

    event_id = str(uuid.uuid4())
    event_time = datetime.datetime.now(datetime.timezone.utc).isoformat()
    # Python's own JSON formatting (", " and ": " separators, \u escapes),
    # not the Go encoder's.
    body = json.dumps(json.loads(args.data)).encode("utf-8")

    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": args.source,
        "ce-type": args.type,
        "ce-time": event_time,
        "ce-correlationid": args.correlation_id,
    }
    if args.traceparent:
        headers["traceparent"] = args.traceparent
    content_type = "application/json"
    if args.bytes_headers:
        headers["content-type"] = content_type
        headers = {k: v.encode("utf-8") for k, v in headers.items()}
        content_type = None

    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        # With confirms, basic_publish raises if the broker nacks the message
        # or returns it as unroutable (mandatory): no queue bound to the key.
        ch.confirm_delivery()
        ch.basic_publish(
            exchange=args.exchange,
            routing_key=args.routing_key,
            body=body,
            properties=pika.BasicProperties(
                content_type=content_type,
                delivery_mode=2,
                message_id=event_id,
                headers=headers,
            ),
            mandatory=True,
        )
    finally:
        conn.close()

    json.dump({"id": event_id, "time": event_time}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
