// The edit-path generator: W watchers and E editors on one board of the real hub,
// every client authenticated with its own JWT and joined with `board:join`.
// Each editor keeps one `task:update` in flight on its own task (so no two edits
// conflict), sending the version its last ack returned; watchers count the
// `task:updated` broadcasts. With several --urls the clients are dealt round-robin
// over the hub nodes (the two-nodes scenario).
//
// Usage: node edits.js --urls URL[,URL] --fixture FILE --editors E --watchers W
//          --duration S --warmup S
// FILE: {"board_id", "editors": [{"token", "task_id"}], "members": [token, ...]}
// stdout: {"event":"setup"}, {"event":"start"}, {"event":"end"}, {"event":"result",...}.
"use strict";

const {
  parseArgs, emitLine, readJson, connect, inBatches, call, summary, cpuFraction, fail,
  performance,
} = require("./hub_client");

const PATH = "/socket.io/";

async function main() {
  const args = parseArgs(process.argv, {
    urls: "http://127.0.0.1:8080", fixture: "", editors: 50, watchers: 1000, duration: 5,
    warmup: 1, batch: 50, ackTimeout: 30000,
  });
  const urls = args.urls.split(",");
  const fixture = readJson(args.fixture);
  if (fixture.editors.length < args.editors || fixture.members.length < args.watchers) {
    throw new Error("the fixture has fewer editors or members than asked for");
  }
  const boardId = fixture.board_id;
  const setupStarted = performance.now();
  const join = async (token, i) => {
    const socket = await connect(urls[i % urls.length], PATH, { token });
    const joined = await call(socket, "board:join", { board_id: boardId });
    return { socket, joined };
  };

  const sentAt = new Map(); // `${task_id}:${version}` -> when the edit making it was sent
  let measuring = false;
  let deliveries = 0;
  let deliveryLatencies = [];
  const onUpdated = (event) => {
    if (!measuring) return;
    deliveries += 1;
    const sent = sentAt.get(`${event.task_id}:${event.task.version}`);
    if (sent !== undefined) deliveryLatencies.push(performance.now() - sent);
  };
  const watchers = await inBatches(args.watchers, args.batch, async (i) => {
    const { socket } = await join(fixture.members[i], i);
    socket.on("task:updated", onUpdated);
    return socket;
  });
  const editors = await inBatches(args.editors, args.batch, async (i) => {
    const { token, task_id: taskId } = fixture.editors[i];
    const { socket, joined } = await join(token, i);
    const task = (joined.tasks || []).find((t) => t.id === taskId);
    if (!task) throw new Error(`editor ${i}: task ${taskId} not in the board's snapshot`);
    return { socket, taskId, version: task.version };
  });
  emitLine({ event: "setup", seconds: (performance.now() - setupStarted) / 1000 });

  let running = true;
  let edits = 0;
  let conflicts = 0;
  let timeouts = 0;
  const errors = {};
  let ackLatencies = [];
  let number = 0;
  const editLoop = async (editor) => {
    while (running) {
      number += 1;
      const payload = {
        task_id: editor.taskId, base_version: editor.version,
        changes: { title: `Bench edit ${number}` },
      };
      const started = performance.now();
      sentAt.set(`${editor.taskId}:${editor.version + 1}`, started);
      let ack;
      try {
        ack = await editor.socket.timeout(args.ackTimeout).emitWithAck("task:update", payload);
      } catch (err) {
        timeouts += 1;
        continue;
      }
      const took = performance.now() - started;
      if (ack.ok) {
        editor.version = ack.data.task.version;
        if (measuring) { edits += 1; ackLatencies.push(took); }
      } else if (ack.error.code === "version_conflict") {
        if (measuring) conflicts += 1;
        editor.version = ack.error.details.task.version;
      } else {
        errors[ack.error.code] = (errors[ack.error.code] || 0) + 1;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const loops = editors.map(editLoop);
  await new Promise((r) => setTimeout(r, args.warmup * 1000));
  measuring = true;
  deliveries = 0;
  deliveryLatencies = [];
  ackLatencies = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  emitLine({ event: "start" });
  await new Promise((r) => setTimeout(r, args.duration * 1000));
  measuring = false;
  const wall = (performance.now() - t0) / 1000;
  emitLine({ event: "end" });
  const cpu = cpuFraction(cpu0, wall);
  running = false;
  await Promise.all(loops);

  const acks = summary(ackLatencies);
  const delivered = summary(deliveryLatencies);
  emitLine({
    event: "result",
    nodes: urls.length,
    editors: args.editors,
    watchers: args.watchers,
    wall_s: wall,
    edits,
    edits_per_s: edits / wall,
    ack_p50_ms: acks.p50,
    ack_p99_ms: acks.p99,
    conflicts,
    timeouts,
    errors,
    deliveries,
    deliveries_per_s: deliveries / wall,
    delivery_p50_ms: delivered.p50,
    delivery_p99_ms: delivered.p99,
    ...cpu,
  });
  for (const s of [...watchers, ...editors.map((e) => e.socket)]) s.close();
  process.exit(0);
}

main().catch(fail("edits"));
