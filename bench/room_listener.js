// The Kafka-to-room listeners: M members of one board, each a distinct user with its
// own JWT, joined with `board:join`. They time every `task:updated` whose
// correlation_id the bench's Kafka producer stamped ("bench:<run>:<wall ms>") from
// that stamp to receipt; producer and listeners share this machine's wall clock.
// Records stamped "bench-warm:<run>:..." only say the path is up (the bridge's
// consumer group has formed): the first one prints {"event":"warm"}.
//
// Usage: node room_listener.js --url URL --fixture FILE --members M --records K
//          --run ID --timeout S
// stdout: {"event":"ready"} once every member joined, {"event":"warm"},
// then {"event":"result",...} when every member has every record, or at the timeout.
//
// The members are light clients (light_client.js) that read the stamp and the
// event's id from the frame's text: one process takes all 1000 deliveries of a
// record one after the other. With socket.io-client members the p50 was 19.3 and
// 19.4 ms in two runs of 3, against 15.1 and 14.8 ms with these clients, back to
// back (the p99 34.1 and 32.9 ms against 26.2 and 32.9 ms).
"use strict";

const {
  parseArgs, emitLine, readJson, inBatches, listeningMember, summary, wallMs, fail, performance,
} = require("./hub_client");

const PATH = "/socket.io/";

async function main() {
  const args = parseArgs(process.argv, {
    url: "http://127.0.0.1:8080", fixture: "", members: 1000, records: 50, run: "", timeout: 120,
    batch: 50,
  });
  const fixture = readJson(args.fixture);
  if (fixture.members.length < args.members) throw new Error("the fixture has too few members");
  const measured = `bench:${args.run}:`;
  const warmup = `bench-warm:${args.run}:`;
  const expected = args.members * args.records;
  const latencies = [];
  const records = new Set();
  let warm = false;
  let finish = null;
  const done = new Promise((resolve) => { finish = resolve; });
  const stamp = (prefix) => new RegExp(`"correlation_id":"${prefix}(\\d+(?:\\.\\d+)?)"`);
  const measuredAt = stamp(measured);
  const eventId = /"event_id":"([^"]+)"/;
  const onUpdated = (json) => {
    const at = measuredAt.exec(json);
    if (at) {
      latencies.push(wallMs() - Number(at[1]));
      records.add(eventId.exec(json)[1]);
      if (latencies.length >= expected) finish();
    } else if (!warm && json.includes(`"correlation_id":"${warmup}`)) {
      warm = true;
      emitLine({ event: "warm" });
    }
  };
  const started = performance.now();
  const sockets = await inBatches(args.members, args.batch, (i) =>
    listeningMember(args.url, PATH, fixture.members[i], fixture.board_id, onUpdated));
  emitLine({ event: "ready", seconds: (performance.now() - started) / 1000 });
  const timer = setTimeout(finish, args.timeout * 1000);
  await done;
  clearTimeout(timer);
  const { p50, p99 } = summary(latencies);
  emitLine({
    event: "result",
    members: args.members,
    records: records.size,
    expected,
    deliveries: latencies.length,
    p50_ms: p50,
    p99_ms: p99,
    max_ms: latencies.length ? latencies.reduce((a, b) => Math.max(a, b)) : null,
  });
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch(fail("room_listener"));
