// The edit-path generator: W watchers and E editors on one board of the real hub,
// every client authenticated with its own JWT and joined with `board:join`.
// Each editor keeps one `task:update` in flight on its own task (so no two edits
// conflict), sending the version its last ack returned; watchers count the
// `task:updated` broadcasts. With several --urls the clients are dealt round-robin
// over the hub nodes (the two-nodes scenario).
//
// --role splits the generator in two processes (the edit-path scenario), so the
// editors' acks are not queued behind the watchers' ~tens of thousands of deliveries
// per second in one event loop:
//   watchers: join, print {"event":"ready"}, then count deliveries between the
//             "start" and "end" lines the driver writes to stdin; "end" prints the result.
//   editors:  join, edit; prints start/end/result like `all`, without deliveries.
//   all:      both in this one process (the two-nodes scenario).
// An edit's send time (wall clock, comparable across processes of this machine)
// rides in its title, so a watcher in another process can time its delivery.
// Watchers are light clients (light_client.js) that read that time from the
// frame's text; editors are socket.io-clients, which parse their acks in full.
//
// Usage: node edits.js --urls URL[,URL] --fixture FILE --editors E --watchers W
//          --duration S --warmup S [--role all|editors|watchers]
// FILE: {"board_id", "editors": [{"token", "task_id"}], "members": [token, ...]}
// stdout: {"event":"setup"}, {"event":"start"}, {"event":"end"}, {"event":"result",...}.
"use strict";

const readline = require("node:readline");
const {
  parseArgs, emitLine, readJson, connect, inBatches, call, listeningMember, summary, cpuFraction,
  fail, performance, wallMs,
} = require("./hub_client");

const PATH = "/socket.io/";
// the send time at the end of an edit's title, in the event's JSON text
const SENT_AT = /"title":"Bench edit \d+ @(\d+(?:\.\d+)?)"/;

function joiner(urls, boardId) {
  return async (token, i) => {
    const socket = await connect(urls[i % urls.length], PATH, { token });
    const joined = await call(socket, "board:join", { board_id: boardId });
    return { socket, joined };
  };
}

// Watchers: count `task:updated` while measuring, timing each from the send time
// in the edit's title.
async function startWatchers(args, fixture, urls) {
  const state = { measuring: false, deliveries: 0, latencies: [] };
  const onUpdated = (json) => {
    if (!state.measuring) return;
    state.deliveries += 1;
    const sent = SENT_AT.exec(json);
    if (sent) state.latencies.push(wallMs() - Number(sent[1]));
  };
  const sockets = await inBatches(args.watchers, args.batch, (i) =>
    listeningMember(urls[i % urls.length], PATH, fixture.members[i], fixture.board_id, onUpdated));
  return { state, sockets };
}

function watcherFigures(state, wall) {
  const delivered = summary(state.latencies);
  return {
    deliveries: state.deliveries,
    deliveries_per_s: state.deliveries / wall,
    delivery_p50_ms: delivered.p50,
    delivery_p99_ms: delivered.p99,
  };
}

// Editors: each keeps one edit in flight until `running()` turns false.
async function startEditors(args, fixture, join) {
  return inBatches(args.editors, args.batch, async (i) => {
    const { token, task_id: taskId } = fixture.editors[i];
    const { socket, joined } = await join(token, i);
    const task = (joined.tasks || []).find((t) => t.id === taskId);
    if (!task) throw new Error(`editor ${i}: task ${taskId} not in the board's snapshot`);
    return { socket, taskId, version: task.version };
  });
}

function editing(args, editors) {
  const state = {
    running: true, measuring: false, edits: 0, conflicts: 0, timeouts: 0, errors: {},
    latencies: [],
  };
  let number = 0;
  const editLoop = async (editor) => {
    while (state.running) {
      number += 1;
      const payload = {
        task_id: editor.taskId, base_version: editor.version,
        changes: { title: `Bench edit ${number} @${wallMs().toFixed(3)}` },
      };
      const started = performance.now();
      let ack;
      try {
        ack = await editor.socket.timeout(args.ackTimeout).emitWithAck("task:update", payload);
      } catch (err) {
        state.timeouts += 1;
        continue;
      }
      const took = performance.now() - started;
      if (ack.ok) {
        editor.version = ack.data.task.version;
        if (state.measuring) { state.edits += 1; state.latencies.push(took); }
      } else if (ack.error.code === "version_conflict") {
        if (state.measuring) state.conflicts += 1;
        editor.version = ack.error.details.task.version;
      } else {
        state.errors[ack.error.code] = (state.errors[ack.error.code] || 0) + 1;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  return { state, loops: editors.map(editLoop) };
}

async function watchersOnly(args, fixture, urls) {
  const setupStarted = performance.now();
  const { state, sockets } = await startWatchers(args, fixture, urls);
  emitLine({ event: "ready", seconds: (performance.now() - setupStarted) / 1000 });
  let cpu0;
  let t0;
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === "start") {
      state.deliveries = 0;
      state.latencies = [];
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      state.measuring = true;
    } else if (line.trim() === "end" && t0 !== undefined) {
      state.measuring = false;
      const wall = (performance.now() - t0) / 1000;
      const cpu = cpuFraction(cpu0, wall);
      emitLine({
        event: "result", role: "watchers", watchers: args.watchers, wall_s: wall,
        ...watcherFigures(state, wall), ...cpu,
      });
      break;
    }
  }
  lines.close();
  for (const s of sockets) s.close();
  process.exit(0);
}

async function main() {
  const args = parseArgs(process.argv, {
    urls: "http://127.0.0.1:8080", fixture: "", editors: 50, watchers: 1000, duration: 5,
    warmup: 1, batch: 50, ackTimeout: 30000, role: "all",
  });
  if (!["all", "editors", "watchers"].includes(args.role)) {
    throw new Error(`unknown role ${args.role}`);
  }
  const urls = args.urls.split(",");
  const fixture = readJson(args.fixture);
  if (fixture.editors.length < args.editors || fixture.members.length < args.watchers) {
    throw new Error("the fixture has fewer editors or members than asked for");
  }
  const join = joiner(urls, fixture.board_id);
  if (args.role === "watchers") return watchersOnly(args, fixture, urls);

  const setupStarted = performance.now();
  const watching = args.role === "all" ? await startWatchers(args, fixture, urls) : null;
  const editors = await startEditors(args, fixture, join);
  emitLine({ event: "setup", seconds: (performance.now() - setupStarted) / 1000 });

  const { state, loops } = editing(args, editors);
  await new Promise((r) => setTimeout(r, args.warmup * 1000));
  if (watching) {
    watching.state.deliveries = 0;
    watching.state.latencies = [];
    watching.state.measuring = true;
  }
  state.measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  emitLine({ event: "start" });
  await new Promise((r) => setTimeout(r, args.duration * 1000));
  state.measuring = false;
  if (watching) watching.state.measuring = false;
  const wall = (performance.now() - t0) / 1000;
  emitLine({ event: "end" });
  const cpu = cpuFraction(cpu0, wall);
  state.running = false;
  await Promise.all(loops);

  const acks = summary(state.latencies);
  emitLine({
    event: "result",
    role: args.role,
    nodes: urls.length,
    editors: args.editors,
    watchers: watching ? args.watchers : 0,
    wall_s: wall,
    edits: state.edits,
    edits_per_s: state.edits / wall,
    ack_p50_ms: acks.p50,
    ack_p99_ms: acks.p99,
    conflicts: state.conflicts,
    timeouts: state.timeouts,
    errors: state.errors,
    ...(watching ? watcherFigures(watching.state, wall) : {}),
    ...cpu,
  });
  const sockets = [...(watching ? watching.sockets : []), ...editors.map((e) => e.socket)];
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch(fail("edits"));
