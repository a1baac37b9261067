// Connection scenarios against the hub or a peer server:
//   --mode storm: open --count sockets at once, time each until its Socket.IO
//     connect ack (the `connect` event); with --join BOARD, the first --joiners of
//     them (distinct board members) then send `board:join` at once, each timed to
//     its ack; then close them all;
//   --mode hold: open --count sockets (in batches: not a storm), print
//     {"event":"holding"}, and keep them idle until stdin closes.
// With --tokens FILE (a JSON list) socket i connects with auth {token: FILE[i % n]};
// without, with auth {role: --role} (the peers take no token).
//
// Usage: node connections.js --mode storm|hold --url URL --count N [--tokens FILE]
//          [--role R] [--batch B] [--timeout MS] [--join BOARD --joiners N]
// stdout: JSON lines; storm: {"event":"result",...}; hold: "holding", then "result".
"use strict";

const {
  parseArgs, emitLine, readJson, connect, inBatches, call, summary, cpuFraction, fail,
  performance,
} = require("./hub_client");

const PATH = "/socket.io/";

function authFor(args, tokens) {
  return (i) => (tokens ? { token: tokens[i % tokens.length] } : { role: args.role });
}

async function storm(args, auth) {
  // the marks let the bench read the server's CPU per phase (storm, joins)
  emitLine({ event: "start" });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const times = [];
  const errors = {};
  let lastConnect = started;
  const attempts = Array.from({ length: args.count }, (_, i) => {
    const t0 = performance.now();
    return connect(args.url, PATH, auth(i), args.timeout).then(
      (socket) => {
        const now = performance.now();
        times.push(now - t0);
        lastConnect = now;
        return socket;
      },
      (err) => {
        errors[err.message] = (errors[err.message] || 0) + 1;
        return null;
      },
    );
  });
  const sockets = await Promise.all(attempts);
  const wall = (lastConnect - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const { p50, p99 } = summary(times);
  let joined = {};
  if (args.join) {
    emitLine({ event: "joining" });
    joined = await joinAll(args, sockets.slice(0, args.joiners));
  }
  emitLine({ event: "end" });
  emitLine({
    ...joined,
    event: "result",
    count: args.count,
    connected: times.length,
    failed: args.count - times.length,
    errors,
    wall_s: wall,
    connects_per_s: wall > 0 ? times.length / wall : null,
    p50_ms: p50,
    p99_ms: p99,
    generator_cpu_frac: (cpu.user + cpu.system) / 1e6 / Math.max(wall, 1e-9),
  });
  for (const s of sockets) if (s) s.close();
}

// Distinct users joining one board at once: the join's own queries, the presence
// write, the reply's presence list, and the `joined` each sends to the room so far.
async function joinAll(args, sockets) {
  const live = sockets.filter((s) => s);
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const times = [];
  const errors = {};
  await Promise.all(live.map((socket) => {
    const t0 = performance.now();
    return call(socket, "board:join", { board_id: args.join }, args.timeout).then(
      () => { times.push(performance.now() - t0); },
      (err) => { errors[err.message] = (errors[err.message] || 0) + 1; },
    );
  }));
  const wall = (performance.now() - started) / 1000;
  const { p50, p99 } = summary(times);
  return {
    joins: times.length,
    join_failed: live.length - times.length,
    join_errors: errors,
    join_wall_s: wall,
    joins_per_s: wall > 0 ? times.length / wall : null,
    join_p50_ms: p50,
    join_p99_ms: p99,
    // the joiners also receive every later joiner's `presence`: the generator may limit
    join_generator_cpu_frac: cpuFraction(cpu0, Math.max(wall, 1e-9)).generator_cpu_frac,
  };
}

async function hold(args, auth) {
  const started = performance.now();
  let dropped = 0;
  const sockets = await inBatches(args.count, args.batch, async (i) => {
    const socket = await connect(args.url, PATH, auth(i), args.timeout);
    socket.on("disconnect", () => { dropped += 1; });
    return socket;
  });
  emitLine({
    event: "holding", connected: sockets.length, seconds: (performance.now() - started) / 1000,
  });
  await new Promise((resolve) => {
    process.stdin.on("data", () => {});
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
  });
  emitLine({ event: "result", connected: sockets.length, dropped });
  for (const s of sockets) s.close();
}

async function main() {
  const args = parseArgs(process.argv, {
    mode: "storm", url: "http://127.0.0.1:8080", count: 2000, tokens: "", role: "storm",
    batch: 100, timeout: 60000, join: "", joiners: 0,
  });
  const auth = authFor(args, args.tokens ? readJson(args.tokens) : null);
  if (args.mode === "storm") await storm(args, auth);
  else if (args.mode === "hold") await hold(args, auth);
  else throw new Error(`unknown mode ${args.mode}`);
  process.exit(0);
}

main().catch(fail("connections"));
