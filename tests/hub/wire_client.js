// The official Node socket.io-client, as tests/hub/test_fanout_wire.py drives it:
// connect, answer every event that asks for an ack, and print one JSON line per
// thing seen, so the test can compare what a real JS client receives from the
// fast path and from stock python-socketio.
//
//   node wire_client.js URL PATH SERIALIZER TRANSPORTS
//
// Lines: {"kind":"packet","text":...} or {"kind":"packet","binary":BASE64} for the
// raw data of every Engine.IO message packet; {"kind":"connect","sid":...};
// {"kind":"event","name":...,"args":[...]} with Buffers as {"$bytes":BASE64};
// {"kind":"upgrade","transport":...} when a polling connection became a websocket.
// The client disconnects and exits when its standard input closes.
"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

// the packages are bench's (npm ci --prefix bench); this file only borrows them
const benchRequire = createRequire(path.join(__dirname, "..", "..", "bench", "package.json"));
const { io } = benchRequire("socket.io-client");

const [url, socketPath, serializer, transports] = process.argv.slice(2);

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function bytesOf(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

// JSON has no bytes: binary values travel as {"$bytes": base64}
function portable(value) {
  const bytes = bytesOf(value);
  if (bytes !== null) return { $bytes: bytes.toString("base64") };
  if (Array.isArray(value)) return value.map(portable);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, portable(v)]));
  }
  return value;
}

const options = {
  path: socketPath,
  transports: transports.split(","),
  reconnection: false,
  timeout: 5000,
};
if (serializer === "msgpack") {
  options.parser = benchRequire("socket.io-msgpack-parser");
}
const socket = io(url, options);

// io() opens the engine synchronously and nothing has been read yet, so this
// listener sees every packet; "packet" fires before the parser decodes it
socket.io.engine.on("packet", (packet) => {
  if (packet.type !== "message") return;
  const bytes = bytesOf(packet.data);
  if (bytes !== null) {
    print({ kind: "packet", binary: bytes.toString("base64") });
  } else {
    print({ kind: "packet", text: packet.data });
  }
});

socket.io.engine.on("upgrade", (transport) => print({ kind: "upgrade", transport: transport.name }));
socket.on("connect", () => print({ kind: "connect", sid: socket.id }));
socket.on("connect_error", (error) => {
  print({ kind: "error", message: String(error && error.message) });
  process.exit(1);
});

socket.onAny((name, ...args) => {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
  print({ kind: "event", name, args: portable(args) });
  if (ack !== null) ack({ client: "node", got: args });
});

process.stdin.on("data", () => {});
process.stdin.on("end", () => {
  socket.disconnect();
  process.exit(0);
});
