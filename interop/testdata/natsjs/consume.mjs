// Receive one event that a troupe app publishes, with nats.js.
//
// The script reads the app's events stream through a JetStream ordered
// consumer (an ephemeral consumer the client manages) filtered to one
// subject, from the start of the stream, so it does not depend on being
// there before the event is published. It prints "ready" once it is
// connected and the stream exists, then the first message as one JSON line:
// subject, stream, headers exactly as nats.js decoded them (each name with
// its list of values) and the body as text. The server URL comes from the
// environment variable TROUPE_INTEROP_URL.
import { parseArgs } from "node:util";
import { connect } from "nats";

const { values: args } = parseArgs({
  options: {
    stream: { type: "string" },
    subject: { type: "string" },
    timeout: { type: "string", default: "30" },
  },
});
const timeoutMs = Number(args.timeout) * 1000;
const timer = setTimeout(() => {
  console.error(`no message within ${args.timeout}s`);
  process.exit(1);
}, timeoutMs);

const nc = await connect({ servers: process.env.TROUPE_INTEROP_URL, timeout: timeoutMs });
try {
  const js = nc.jetstream({ timeout: timeoutMs });
  const consumer = await js.consumers.get(args.stream, { filterSubjects: args.subject });
  await (await nc.jetstreamManager()).streams.info(args.stream);
  console.log("ready");

  let m = null;
  const deadline = Date.now() + timeoutMs;
  while (m === null && Date.now() < deadline) {
    m = await consumer.next({ expires: Math.min(5000, Math.max(1000, deadline - Date.now())) });
  }
  if (m === null) {
    throw new Error(`no message on ${args.subject} within ${args.timeout}s`);
  }
  const hdrs = {};
  if (m.headers) {
    for (const [k, vs] of m.headers) {
      hdrs[k] = vs;
    }
  }
  console.log(JSON.stringify({
    subject: m.subject,
    stream: m.info.stream,
    headers: hdrs,
    body: new TextDecoder().decode(m.data),
  }));
} finally {
  await nc.close();
  clearTimeout(timer);
}
