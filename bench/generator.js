// The load generator: N websocket subscribers in the room and one publisher, in
// one Node process pinned to its own core. The publisher is Node's official
// socket.io-client; the subscribers are light clients (light_client.js: the same
// protocol on a bare websocket, 14-33 % less of the generator core per delivery),
// so the generator distorts less of what it measures. `--client official` makes
// the subscribers socket.io-clients too.
//
// Usage: node generator.js --url URL --path /socket.io/ --subscribers N
//          --mode rate|saturate --rate DELIVERIES_PER_S --duration S --warmup S --window W
//          --deflate 1|0 --client light|official
// stdout: JSON lines {"event":"start"}, {"event":"end"}, then {"event":"result",...}.
// run.py samples the server's CPU at the start and end lines, so the window the
// generator measures and the window the server is charged for are the same.
"use strict";

const { io } = require("socket.io-client");
const { performance } = require("node:perf_hooks");
const { lightConnect } = require("./light_client");

function parseArgs(argv) {
  const args = {
    url: "http://127.0.0.1:8080", path: "/socket.io/", subscribers: 100, mode: "rate",
    rate: 10000, duration: 5, warmup: 1, window: 16, connectBatch: 50, deflate: 1,
    client: "light",
  };
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

function connect(args, role) {
  return new Promise((resolve, reject) => {
    const socket = io(args.url, {
      path: args.path, transports: ["websocket"], forceNew: true, reconnection: false,
      auth: { role }, timeout: 30000,
      // 1 keeps the client's default (offer permessage-deflate, as browsers do)
      ...(args.deflate ? {} : { perMessageDeflate: false }),
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${role} connect: ${err.message}`)));
  });
}

// A subscriber calls `onMsg(payload)` for each "msg" event.
async function subscribe(args, onMsg) {
  if (args.client === "official") {
    const socket = await connect(args, "subscriber");
    socket.on("msg", onMsg);
    return socket;
  }
  if (args.client !== "light") throw new Error(`unknown client ${args.client}`);
  const socket = await lightConnect(args.url, args.path, { role: "subscriber" }, {
    timeout: 30000, deflate: Boolean(args.deflate), origin: false,
  });
  socket.onRaw("msg", (json) => onMsg(JSON.parse(json)[1]));
  return socket;
}

// Batches keep the connect phase from being a connect storm (another scenario).
async function connectAll(args, onMsg) {
  const subscribers = [];
  for (let i = 0; i < args.subscribers; i += args.connectBatch) {
    const batch = Math.min(args.connectBatch, args.subscribers - i);
    subscribers.push(...await Promise.all(Array.from({ length: batch }, () => subscribe(args, onMsg))));
  }
  const publisher = await connect(args, "publisher");
  return { subscribers, publisher };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const args = parseArgs(process.argv);
  let measuring = false;
  let received = 0;
  let latencies = [];
  const pending = new Map(); // seq -> deliveries still expected (saturate window)
  let outstanding = 0;
  let wake = null;

  const onMsg = (payload) => {
    if (measuring) {
      received += 1;
      latencies.push(performance.now() - payload.t);
    }
    const left = pending.get(payload.seq);
    if (left !== undefined) {
      if (left <= 1) {
        pending.delete(payload.seq);
        outstanding -= 1;
        if (wake) { const w = wake; wake = null; w(); }
      } else {
        pending.set(payload.seq, left - 1);
      }
    }
  };
  const { subscribers, publisher } = await connectAll(args, onMsg);
  await new Promise((r) => setTimeout(r, 300)); // joins made in connect handlers settle

  let seq = 0;
  const publish = () => {
    seq += 1;
    if (args.mode === "saturate") { pending.set(seq, args.subscribers); outstanding += 1; }
    publisher.emit("publish", { seq, t: performance.now(), body: "x".repeat(64) }, () => {});
  };

  // One loop for both modes: fixed rate publishes what the clock says is due;
  // saturate keeps `window` publishes in flight, a publish counting as done
  // once every subscriber has it (so the server's queues cannot grow unbounded).
  const publishRate = args.rate / args.subscribers;
  const run = async (seconds) => {
    const started = performance.now();
    let sent = 0;
    while (performance.now() - started < seconds * 1000) {
      if (args.mode === "saturate") {
        while (outstanding < args.window) publish();
        await new Promise((r) => { wake = r; }); // a receipt or the tick below wakes it
      } else {
        const due = Math.floor(((performance.now() - started) / 1000) * publishRate);
        while (sent < due) { publish(); sent += 1; }
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  };

  // Wakes a saturating loop whose window is stuck (a lost delivery) so it still ends on time.
  const tick = setInterval(() => { if (wake) { const w = wake; wake = null; w(); } }, 50);
  await run(args.warmup);
  measuring = true;
  received = 0;
  latencies = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  emitLine({ event: "start" });
  await run(args.duration);
  measuring = false;
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  emitLine({ event: "end" });
  clearInterval(tick);

  const sorted = Float64Array.from(latencies).sort();
  const generatorCpu = (cpu.user + cpu.system) / 1e6;
  emitLine({
    event: "result",
    mode: args.mode,
    subscribers: args.subscribers,
    offered_rate: args.mode === "rate" ? args.rate : null,
    wall_s: wall,
    publishes: seq,
    deliveries: received,
    deliveries_per_s: received / wall,
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
    generator_cpu_s: generatorCpu,
    generator_cpu_frac: generatorCpu / wall,
  });
  publisher.close();
  for (const s of subscribers) s.close();
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`generator: ${err.stack || err}\n`);
  process.exit(1);
});
