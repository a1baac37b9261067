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
"use strict";

const {
  parseArgs, emitLine, readJson, connect, inBatches, call, summary, wallMs, fail, performance,
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
  const onUpdated = (event) => {
    const cid = event.correlation_id || "";
    if (cid.startsWith(measured)) {
      latencies.push(wallMs() - Number(cid.slice(measured.length)));
      records.add(event.event_id);
      if (latencies.length >= expected) finish();
    } else if (cid.startsWith(warmup) && !warm) {
      warm = true;
      emitLine({ event: "warm" });
    }
  };
  const started = performance.now();
  const sockets = await inBatches(args.members, args.batch, async (i) => {
    const socket = await connect(args.url, PATH, { token: fixture.members[i] });
    socket.on("task:updated", onUpdated);
    await call(socket, "board:join", { board_id: fixture.board_id });
    return socket;
  });
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
