// Publish one CloudEvent in binary content mode to a troupe app with nats.js,
// as a JavaScript service outside the app would: it knows only the wire
// format (subject troupe.<app>.e.<topic>.v<N> on the app's events stream,
// CloudEvents attributes as ce- headers, JSON body), not troupe.
//
// The id and time are made here, the JavaScript way (crypto.randomUUID,
// Date.toISOString with milliseconds and a "Z"), and printed on stdout as
// one JSON line with the stream's acknowledgement once JetStream stored the
// event. The server URL comes from the environment variable
// TROUPE_INTEROP_URL.
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { connect, headers } from "nats";

const { values: args } = parseArgs({
  options: {
    subject: { type: "string" },
    stream: { type: "string" },
    source: { type: "string" },
    type: { type: "string" },
    "correlation-id": { type: "string" },
    traceparent: { type: "string", default: "" },
    data: { type: "string" },
    timeout: { type: "string", default: "30" },
  },
});
const timeoutMs = Number(args.timeout) * 1000;
const timer = setTimeout(() => {
  console.error(`publish did not finish within ${args.timeout}s`);
  process.exit(1);
}, timeoutMs);

const id = randomUUID();
const time = new Date().toISOString();
const h = headers();
h.set("ce-specversion", "1.0");
h.set("ce-id", id);
h.set("ce-source", args.source);
h.set("ce-type", args.type);
h.set("ce-time", time);
h.set("ce-correlationid", args["correlation-id"]);
if (args.traceparent) {
  h.set("traceparent", args.traceparent);
}
h.set("content-type", "application/json");
// JavaScript's own JSON formatting, not the Go encoder's.
const body = new TextEncoder().encode(JSON.stringify(JSON.parse(args.data)));

const nc = await connect({ servers: process.env.TROUPE_INTEROP_URL, timeout: timeoutMs });
try {
  const js = nc.jetstream({ timeout: timeoutMs });
  // msgID becomes Nats-Msg-Id, which the stream deduplicates on; expect
  // makes the server refuse the event unless this stream would store it.
  const ack = await js.publish(args.subject, body, {
    headers: h,
    msgID: id,
    expect: { streamName: args.stream },
  });
  console.log(JSON.stringify({ id, time, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }));
} finally {
  await nc.close();
  clearTimeout(timer);
}
