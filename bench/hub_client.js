// What the hub scenarios' Node generators share: options, connecting with a token
// (or the peers' bare `role`), percentiles and the JSON lines the Python side reads.
// The official socket.io-client speaks to the hub as a browser does (websocket,
// no permessage-deflate, like generator.js by default).
"use strict";

const fs = require("node:fs");
const { io } = require("socket.io-client");
const { performance } = require("node:perf_hooks");
const { lightConnect } = require("./light_client");

function parseArgs(argv, defaults) {
  const args = { ...defaults };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    args[key] = typeof args[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return args;
}

function emitLine(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function readJson(path) {
  return JSON.parse(fs.readFileSync(path, "utf-8"));
}

// `auth` is {token} for the hub, {role} for the peers (they take no token). The
// Origin is the server's own, as its page would send: the hub lets people's tokens
// in from browsers only (SECURITY.md).
function connect(url, path, auth, timeout = 60000) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      path, transports: ["websocket"], forceNew: true, reconnection: false,
      auth, timeout, perMessageDeflate: false,
      extraHeaders: { Origin: new URL(url).origin },
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(new Error(`connect: ${err.message}`));
    });
  });
}

// Batches keep setup from being a connect storm (that is its own scenario).
async function inBatches(count, batch, make) {
  const made = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    made.push(...await Promise.all(Array.from({ length: n }, (_, j) => make(i + j))));
  }
  return made;
}

async function call(socket, event, payload, timeout = 60000) {
  const ack = await socket.timeout(timeout).emitWithAck(event, payload);
  if (!ack || !ack.ok) throw new Error(`${event}: ${JSON.stringify(ack && ack.error)}`);
  return ack.data;
}

// A member that only listens: a light client (light_client.js) joined to the board,
// handing each `task:updated` to `onUpdated` as its JSON text, unparsed.
async function listeningMember(url, path, token, boardId, onUpdated) {
  const socket = await lightConnect(url, path, { token });
  socket.onRaw("task:updated", onUpdated);
  const joined = await socket.call("board:join", { board_id: boardId });
  if (!joined?.ok) throw new Error(`board:join: ${JSON.stringify(joined?.error)}`);
  return socket;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

// Wall-clock milliseconds with sub-millisecond precision, comparable across processes
// of this machine (the Kafka producer stamps records with Python's time.time()).
function wallMs() {
  return performance.timeOrigin + performance.now();
}

function cpuFraction(since, wallS) {
  const cpu = process.cpuUsage(since);
  const seconds = (cpu.user + cpu.system) / 1e6;
  return { generator_cpu_s: seconds, generator_cpu_frac: seconds / wallS };
}

function fail(name) {
  return (err) => {
    process.stderr.write(`${name}: ${err.stack || err}\n`);
    process.exit(1);
  };
}

module.exports = {
  parseArgs, emitLine, readJson, connect, inBatches, call, listeningMember, percentile, summary,
  wallMs, cpuFraction, fail, performance,
};
