// One socket for the logged-in session, shared by the board, the chat and the bell.
// It connects with the current access token, and after every refresh it reconnects
// with the new one once no call is waiting for its ack, so a live socket never
// outlives the token it was opened with. Listeners stay registered across
// reconnects; `whenConnected` runs again on each connect (to join rooms again).

import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 10_000;
const RETRY_REFUSED_MS = 5_000;
// How long one connection attempt may wait for the hub's Engine.IO handshake, which
// the hub sends as soon as the websocket is up. socket.io-client waits 20 s by
// default, and only a timeout (or a transport error) ends an attempt that got no
// answer, so a connection that a proxy or a flaky network took and then dropped
// in silence kept the page "Reconnecting…" for 20 s after the network came back.
const CONNECT_TIMEOUT_MS = 8_000;

export class HubError extends Error {
  constructor(error) {
    super(error?.message || "The hub refused this.");
    this.code = error?.code || "internal";
    this.details = error?.details || {};
  }
}

export class Live {
  constructor(api) {
    this.api = api;
    this.pending = 0;
    this.stale = false;  // the socket was opened with a token that has since been replaced
    this.socket = io({ autoConnect: false, transports: ["websocket"], timeout: CONNECT_TIMEOUT_MS });
    this.socket.on("connect", () => { this.stale = false; });
    this.socket.on("connect_error", () => {
      // a refused handshake is not retried by the client itself: get a fresh
      // token (the refusal is most often an expired one) and try again
      if (!this.socket.active && this.api.accessToken) {
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.api.refreshSoon(), RETRY_REFUSED_MS);
      }
    });
    // A node that stops (a deploy) closes its connections saying `server_shutdown`.
    // socket.io-client does not reconnect after a server's disconnect by itself, so
    // come back after a short random delay (the node's clients do not all arrive at
    // once); the load balancer sends us to a live node, `whenConnected` joins again.
    this.socket.on("connection:closing", (body) => { this.farewell = body?.details?.reason; });
    this.socket.on("disconnect", (reason) => {
      const farewell = this.farewell;
      this.farewell = undefined;
      if (reason !== "io server disconnect") return;
      if (farewell !== "server_shutdown") {
        // Closed on purpose for the session's sake (token_expired, session_revoked,
        // account_inactive): a refresh brings a new token, and the socket connects
        // with it, or, when the login has ended, fails and signs the page out.
        if (farewell && this.api.accessToken) this.api.refreshSoon();
        return;
      }
      clearTimeout(this.retry);
      this.retry = setTimeout(() => {
        if (this.api.accessToken && !this.socket.connected && !this.socket.active) this.socket.connect();
      }, 250 + Math.random() * 750);
    });
    api.onToken((token) => this.tokenChanged(token));
    if (api.accessToken) this.tokenChanged(api.accessToken);
  }

  get connected() {
    return this.socket.connected;
  }

  tokenChanged(token) {
    clearTimeout(this.retry);
    if (!token) {
      this.socket.disconnect();
      this.socket.sendBuffer = [];  // nothing of this user goes out under the next login
      return;
    }
    this.socket.auth = { token };
    if (!this.socket.connected && !this.socket.active) this.socket.connect();
    else if (this.socket.connected) {
      this.stale = true;
      this.reconnectIfIdle();
    }
  }

  reconnectIfIdle() {
    if (!this.stale || this.pending > 0) return;
    this.stale = false;
    this.socket.disconnect();
    this.socket.connect();
  }

  /** A server event: `fn(body)`. Returns the function that stops listening. */
  on(event, fn) {
    this.socket.on(event, fn);
    return () => this.socket.off(event, fn);
  }

  /** `fn()` now if connected, and again after every (re)connect. */
  whenConnected(fn) {
    if (this.socket.connected) queueMicrotask(fn);
    return this.on("connect", fn);
  }

  /** A client event with its ack: resolves with `data`, rejects with a HubError. */
  call(event, payload) {
    // after a logout nothing may wait in the send buffer for the next login
    if (!this.api.accessToken) {
      return Promise.reject(new HubError({ code: "unauthorized", message: "You are logged out." }));
    }
    this.pending += 1;
    return new Promise((resolve, reject) => {
      this.socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (timeout, reply) => {
        this.pending -= 1;
        if (timeout) {
          const message = this.socket.connected ? "The hub did not answer in time." : "The connection was lost.";
          reject(new HubError({ code: "unavailable", message }));
        }
        else if (reply.ok) resolve(reply.data);
        else reject(new HubError(reply.error));
        this.reconnectIfIdle();
      });
    });
  }
}
