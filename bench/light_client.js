// A receiving Socket.IO client on a bare websocket, for the generators' many
// subscribers and watchers.
//
// A generator core receiving for 1000 subscribers is busy, and socket.io-client's
// layers (engine.io packet objects, the decoder's JSON.parse of every event, event
// emitters) are part of that. Measured at 50,000 deliveries/s to the same servers
// (2 repetitions each, back to back), socket.io-client subscribers used 58-67 % of
// the generator core at N=100 and 77-81 % at N=1000; these clients 48-52 % and
// 54-59 %, and the N=1000 p99 went from 16.5-18.4 ms to 11.7-14.2 ms for Node's
// server and the hub alike.
//
// This client speaks the same protocol (Engine.IO 4 over websocket, Socket.IO 5
// JSON text packets, the default namespace) but hands each event to its listener
// as the raw JSON text, and only the listener decides what to parse. It answers
// pings, sends events with acks (to join a board) and treats anything
// unexpected (a binary frame, a disconnect packet, a close) as an error, so a
// server that strays from the protocol fails the run rather than being counted.
"use strict";

const WebSocket = require("ws");

const OPEN = "0";
const PING = "2";
const PONG = "3";
const MESSAGE = "4";
// Socket.IO packet types inside an Engine.IO message
const CONNECT = "0";
const DISCONNECT = "1";
const EVENT = "2";
const ACK = "3";
const CONNECT_ERROR = "4";

class LightSocket {
  constructor(ws) {
    this.ws = ws;
    this.nextAck = 0;
    this.acks = new Map(); // ack id -> resolve
    this.prefixes = []; // [prefix, listener]: the event's JSON starts with ["name",
    this.onError = (err) => {
      process.stderr.write(`light client: ${err.stack || err}\n`);
      process.exit(1);
    };
  }

  /** Call `listener(json)` with each `name` event's JSON text (`["name",...]`), unparsed. */
  onRaw(name, listener) {
    this.prefixes.push([`${JSON.stringify([name]).slice(0, -1)},`, listener]);
  }

  /** Send an event and resolve with the first argument of its ack. */
  call(name, payload, timeout = 60000) {
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`${name}: no ack in ${timeout} ms`));
      }, timeout);
      this.acks.set(id, (args) => { clearTimeout(timer); resolve(args[0]); });
      this.ws.send(`${MESSAGE}${EVENT}${id}${JSON.stringify([name, payload])}`);
    });
  }

  close() {
    this.ws.removeAllListeners("close");
    this.ws.close();
  }

  _message(text) {
    if (text === PING) {
      this.ws.send(PONG);
      return;
    }
    if (text[0] !== MESSAGE) return this.onError(new Error(`unexpected packet ${text.slice(0, 40)}`));
    const type = text[1];
    if (type === EVENT) {
      // an event asking for an ack, or of another namespace: nothing the servers send
      if (text[2] !== "[") return this.onError(new Error(`unexpected event ${text.slice(0, 40)}`));
      for (const [prefix, listener] of this.prefixes) {
        if (text.startsWith(prefix, 2)) return listener(text.slice(2));
      }
      return; // an event nobody listens for, as socket.io-client would drop it
    }
    if (type === ACK) {
      const open = text.indexOf("[", 2);
      const id = Number(text.slice(2, open));
      const resolve = this.acks.get(id);
      if (resolve) {
        this.acks.delete(id);
        resolve(JSON.parse(text.slice(open)));
      }
      return;
    }
    if (type === DISCONNECT) return this.onError(new Error("the server disconnected the socket"));
    return this.onError(new Error(`unexpected packet ${text.slice(0, 40)}`));
  }
}

/**
 * Connect to `url` (http://host:port) at `path` with `auth` (the CONNECT packet's
 * payload) and resolve with a LightSocket once the namespace is joined.
 * `deflate` offers permessage-deflate, as browsers and socket.io-client do.
 */
function lightConnect(url, path, auth, { timeout = 60000, deflate = false, origin = true } = {}) {
  const target = new URL(url);
  target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  target.pathname = path;
  target.search = "?EIO=4&transport=websocket";
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, {
      perMessageDeflate: deflate ? { threshold: 1024 } : false,
      headers: origin ? { Origin: new URL(url).origin } : {},
    });
    const socket = new LightSocket(ws);
    let connected = false;
    const timer = setTimeout(() => fail(new Error(`connect: no answer in ${timeout} ms`)), timeout);
    const fail = (err) => {
      clearTimeout(timer);
      ws.removeAllListeners("close");
      ws.terminate();
      if (connected) socket.onError(err);
      else reject(err);
    };
    ws.on("error", (err) => fail(err));
    ws.on("close", () => fail(new Error("the websocket closed")));
    ws.on("message", (data, isBinary) => {
      if (isBinary) return fail(new Error("unexpected binary frame"));
      const text = data.toString();
      if (connected) return socket._message(text);
      if (text[0] === OPEN) {
        ws.send(`${MESSAGE}${CONNECT}${JSON.stringify(auth)}`);
      } else if (text.startsWith(MESSAGE + CONNECT)) {
        connected = true;
        clearTimeout(timer);
        resolve(socket);
      } else if (text.startsWith(MESSAGE + CONNECT_ERROR)) {
        fail(new Error(`connect: ${text.slice(2)}`));
      } else if (text === PING) {
        ws.send(PONG);
      } else {
        fail(new Error(`connect: unexpected packet ${text.slice(0, 40)}`));
      }
    });
  });
}

module.exports = { lightConnect };
