// The Node peer: a minimal socket.io 4.8 server doing the fan-out the hub is
// measured against. Kept bare on purpose (no adapter, no middleware) so it is
// the best case a team would get from Node.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const ROOM = "bench";
const port = Number(process.env.PORT || 0);

const httpServer = http.createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  // Subscribers join the room; the publisher stays out so every publish is N deliveries.
  if (socket.handshake.auth && socket.handshake.auth.role === "subscriber") {
    socket.join(ROOM);
  }
  socket.on("publish", (payload, ack) => {
    io.to(ROOM).emit("msg", payload);
    if (typeof ack === "function") ack(true);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  // run.py waits for this line before it starts the generator.
  process.stdout.write(JSON.stringify({ ready: true, port: httpServer.address().port }) + "\n");
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
