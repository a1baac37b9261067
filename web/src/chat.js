// The board's chat: its channel, my DMs and my other channels, beside the columns.
// The open channel's messages are kept by seq (the hub's per-channel order, no
// gaps), so a message that arrives twice (the send's ack and the room's echo, or
// around a join) is placed once, and edits and deletes replace it in place.
// Unread counts start from chat:channels and then follow the events: a message of
// someone else in a channel that is not open and visible adds one; reading
// (chat:read here, or chat:unread from my other tabs) takes the hub's count. A
// count of the hub (chat:channels, chat:join) keeps the messages counted here that
// came after it (a seq above the last_seq it counted to).
// The hub sends a channel's messages only to its room, so each connect joins the
// rooms of my other channels too (the board's channel comes with board:join, DMs
// with my user room). A first DM has no channel yet: it is sent to the person, and
// the ack says which channel it made. Nothing the hub refuses is kept quiet: the
// reason shows in the panel's alert line.

import { arrange, h, show } from "./dom.js";

const PAGE = 50;  // messages per join or history page
const NEAR_TOP_PX = 40;  // scrolled this close to the top: load older messages
const NEAR_BOTTOM_PX = 80;  // this close to the bottom: follow new messages
const TYPING_EVERY_MS = 1000;  // "still typing" at most this often (the hub passes one per 2 s)
const TYPING_IDLE_MS = 3000;  // no key for this long: "stopped typing"
const TYPING_SHOWN_MS = 5000;  // someone's "typing" without a refresh goes after this

/** A message's time: the hour for today, the date too for older ones. */
function stamp(iso) {
  const date = new Date(iso);
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** "Ann is typing…", "Ann and Bo are typing…", "Several people are typing…". */
function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

export class ChatPanel {
  /** `live` is the session's socket; `members()` names the board's people (id -> name). */
  constructor(live, api, boardId, members) {
    this.live = live;
    this.api = api;
    this.boardId = boardId;
    this.members = members;
    this.channels = new Map();  // the channels listed here: id -> channel (with unread, last_read_seq, last_seq)
    this.openId = null;  // the channel shown, or null (none yet, or a DM not started)
    this.draft = null;  // {userId, name}: a DM whose first message makes the channel
    this.resetRoom();
    this.typers = new Map();  // user id -> {name, timer}: who is typing in the open channel
    this.typingIn = null;  // the channel I said I am typing in
    this.typingSaidAt = 0;
    this.outgoing = null;  // {key, body, id}: the last send not acknowledged, resent with its id
    this.uncounted = new Set();  // ids of deleted messages already taken off an unread count
    this.stops = [];
    this.build();
    const on = (event, fn) => this.stops.push(this.live.on(event, fn));
    on("chat:message", (message) => this.received(message));
    on("chat:edited", (message) => this.changed(message));
    on("chat:deleted", (message) => this.changed(message));
    on("chat:typing", (body) => this.heardTyping(body));
    on("chat:unread", (body) => this.readElsewhere(body));
    on("chat:channel", (channel) => this.added(channel));
    this.stops.push(this.live.whenConnected(() => this.connected()));
    this.onVisibility = () => this.markRead();
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  /** The board is left: stop listening. */
  close() {
    this.closed = true;
    this.stopTyping();
    clearTimeout(this.reload);
    for (const stop of this.stops.splice(0)) stop();
    document.removeEventListener("visibilitychange", this.onVisibility);
    for (const { timer } of this.typers.values()) clearTimeout(timer);
    this.typers.clear();
  }

  get me() {
    return this.api.user?.id;
  }

  /** The chat is open on screen and the page is in front. */
  get visible() {
    return !this.element.hidden && document.visibilityState === "visible";
  }

  resetRoom() {
    this.messages = new Map();  // seq -> message of the open channel
    this.items = new Map();  // seq -> its <li>
    this.loaded = false;  // the open channel's newest page is in
    this.joining = null;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.editing = null;  // the seq of my message being edited
    this.early = [];  // [message, replace] of the open channel heard while its join was on the way
  }

  build() {
    this.toggleBadge = h("span", { className: "chat-badge", "aria-hidden": "true", hidden: true });
    this.toggle = h("button", { type: "button", className: "chat-toggle", "aria-expanded": "false",
      "aria-controls": "chat-panel", onclick: () => this.setOpen(this.element.hidden) },
      "Chat", this.toggleBadge);
    this.error = h("p", { className: "error chat-error", role: "alert" });
    this.channelList = h("ul", { className: "chat-channels" });
    this.channelItems = new Map();  // channel id -> its <li>, kept across redraws
    this.people = h("ul", { className: "chat-people", "aria-label": "People to message" });
    this.newDm = h("details", { className: "chat-new",
      ontoggle: () => { if (this.newDm.open) this.renderPeople(); } },
      h("summary", {}, "New direct message"), this.people);
    this.title = h("h3", { id: "chat-room-title", className: "chat-room-title" }, "Chat");
    this.older = h("button", { type: "button", className: "chat-older", hidden: true,
      onclick: () => this.loadOlder() }, "Load older messages");
    this.start = h("p", { className: "chat-start", hidden: true });
    this.list = h("ol", { className: "chat-messages" });
    this.log = h("div", { className: "chat-log", role: "log", "aria-live": "polite", tabindex: "0",
      "aria-labelledby": "chat-room-title",
      onscroll: () => { if (this.log.scrollTop < NEAR_TOP_PX) this.loadOlder(); } },
      this.older, this.start, this.list);
    this.typingLine = h("p", { className: "chat-typing", "aria-live": "polite" });
    this.input = h("textarea", { id: "chat-input", rows: 2, maxlength: 10000, "aria-describedby": "chat-input-help",
      oninput: () => this.typed(),
      onblur: () => this.stopTyping(),
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.send();
        }
      } });
    this.inputLabel = h("label", { for: "chat-input", className: "sr-only" }, "Message");
    this.compose = h("form", { className: "chat-compose",
      onsubmit: (event) => { event.preventDefault(); this.send(); } },
      this.inputLabel, this.input, h("button", { type: "submit", className: "primary" }, "Send"),
      h("span", { id: "chat-input-help", className: "sr-only" }, "Enter sends; Shift+Enter starts a new line."));
    this.element = h("aside", { className: "chat", id: "chat-panel", "aria-label": "Chat", hidden: true },
      h("h2", { className: "chat-heading" }, "Chat"),
      h("nav", { className: "chat-nav", "aria-label": "Channels" }, this.channelList),
      this.newDm, this.error,
      h("section", { className: "chat-room", "aria-labelledby": "chat-room-title" },
        this.title, this.log, this.typingLine, this.compose));
  }

  /** Show or collapse the chat; opening it joins the chosen channel and reads it. */
  setOpen(open) {
    this.element.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    if (!open) {
      this.stopTyping();
      return;
    }
    if (this.openId && !this.loaded) this.enter();
    else this.scrollToEnd();
    this.markRead();
    this.input.focus();
  }

  say(message) {
    this.error.textContent = message || "";
  }

  /** Every (re)connect: the channels and their counts, my rooms, and the open channel again. */
  async connected() {
    if (!(await this.loadChannels())) return;
    for (const channel of this.channels.values()) {
      if (channel.kind === "channel" && !channel.is_board_channel) this.joinRoom(channel.id);
    }
    if (!this.openId && !this.draft) {
      const board = [...this.channels.values()].find((c) => c.is_board_channel);
      if (board) this.select(board.id, false);
    } else if (this.openId && (this.loaded || !this.element.hidden)) {
      this.enter();
    }
  }

  /** Mine: this board's channel, my DMs and my channels that are not another board's. */
  listed(channel) {
    return channel.kind === "dm" || !channel.is_board_channel || channel.board_id === this.boardId;
  }

  async loadChannels() {
    let reply;
    try {
      reply = await this.live.call("chat:channels", {});
    } catch (error) {
      this.say(`The chat's channels could not be loaded: ${error.message}`);
      return false;
    }
    if (this.closed) return false;
    const before = this.channels;
    this.channels = new Map(reply.channels.filter((c) => this.listed(c)).map((c) => {
      const had = before.get(c.id);
      return [c.id, had ? this.recount({ ...c, counted: had.counted, last_seq: had.last_seq }, c) : c];
    }));
    if (this.openId && !this.channels.has(this.openId)) {
      this.openId = null;
      this.resetRoom();
      this.renderRoom();
    }
    this.renderChannels();
    return true;
  }

  /** Hear a channel's messages live (for its unread count) without opening it. */
  async joinRoom(channelId) {
    try {
      // the hub enters the room before it counts, so the reply's count holds every
      // message that came before the join and last_seq keeps later ones from
      // being counted twice
      const { channel: joined } = await this.live.call("chat:join", { channel_id: channelId, limit: 1 });
      const channel = this.channels.get(channelId);
      if (!channel || !joined) return;
      this.recount(channel, joined);
      this.renderChannels();
    } catch (error) {
      this.say(`A channel could not be joined: ${error.message}`);
    }
  }

  /** Take the hub's count of a channel (`counted`: its unread, last_read_seq and
   * last_seq when it counted), plus the messages counted here live that came after:
   * a message sent while the hub's answer was on its way is in neither otherwise. */
  recount(channel, counted) {
    channel.last_read_seq = Math.max(channel.last_read_seq || 0, counted.last_read_seq || 0);
    const later = [...(channel.counted || [])].filter((seq) =>
      seq > (counted.last_seq || 0) && seq > channel.last_read_seq);
    channel.counted = new Set(later);
    channel.unread = (counted.unread || 0) + later.length;
    channel.last_seq = Math.max(channel.last_seq || 0, counted.last_seq || 0);
    return channel;
  }

  nameOf(channel) {
    if (channel.kind !== "dm") return channel.name || "Channel";
    const others = channel.members.filter((m) => m.id !== this.me);
    return others.map((m) => m.name).join(", ") || "Direct message";
  }

  ordered() {
    const rank = (c) => (c.is_board_channel ? 0 : c.kind === "channel" ? 1 : 2);
    return [...this.channels.values()].sort((a, b) =>
      rank(a) - rank(b) || this.nameOf(a).localeCompare(this.nameOf(b)));
  }

  renderChannels() {
    // each channel keeps its element: a click that lands while the list is redrawn
    // (a message came, a count changed) still reaches its button
    arrange(this.channelList, this.ordered().map((channel) => this.channelItem(channel)));
    for (const id of this.channelItems.keys()) {
      if (!this.channels.has(id)) this.channelItems.delete(id);
    }
    const total = [...this.channels.values()].reduce((sum, c) => sum + (c.unread || 0), 0);
    this.toggleBadge.hidden = total === 0;
    this.toggleBadge.textContent = String(total);
    if (total) this.toggle.setAttribute("aria-label", `Chat, ${total} unread`);
    else this.toggle.removeAttribute("aria-label");
  }

  /** A channel's entry in the list: the element it had, brought up to date. */
  channelItem(channel) {
    let item = this.channelItems.get(channel.id);
    if (!item) {
      item = h("li", {}, h("button", { type: "button", className: "chat-channel",
        "data-channel-id": channel.id, onclick: () => this.select(channel.id) }));
      this.channelItems.set(channel.id, item);
    }
    const button = item.firstChild;
    const unread = channel.unread || 0;
    const name = this.nameOf(channel);
    const label = unread ? `${name}, ${unread} unread` : null;
    const current = channel.id === this.openId ? "true" : null;
    for (const [attribute, value] of [["aria-label", label], ["aria-current", current]]) {
      if (value === null) button.removeAttribute(attribute);
      else if (button.getAttribute(attribute) !== value) button.setAttribute(attribute, value);
    }
    const content = `${channel.kind}\u0000${name}\u0000${unread}`;
    if (button.dataset.content !== content) {
      button.dataset.content = content;
      button.replaceChildren(...[
        channel.kind === "dm" ? null : h("span", { "aria-hidden": "true" }, "# "),
        name,
        unread ? h("span", { className: "chat-badge", "aria-hidden": "true" }, String(unread)) : null,
      ].filter((part) => part !== null));
    }
    return item;
  }

  /** The board's people I can write to, each opening our DM. */
  renderPeople() {
    const people = [...this.members()].filter(([id]) => id !== this.me)
      .sort((a, b) => a[1].localeCompare(b[1]));
    if (!people.length) {
      show(this.people, h("li", { className: "muted" }, "Nobody else is on this board yet."));
      return;
    }
    show(this.people, ...people.map(([id, name]) => h("li", {},
      h("button", { type: "button", className: "link", onclick: () => this.openDm(id, name) }, name))));
  }

  /** Our DM if there is one; otherwise an empty one that the first message makes. */
  openDm(userId, name) {
    this.newDm.open = false;
    const dm = [...this.channels.values()].find((c) =>
      c.kind === "dm" && c.members.some((m) => m.id === userId));
    if (dm) {
      this.select(dm.id);
    } else {
      this.leaveRoom();
      this.openId = null;
      this.draft = { userId, name };
      this.resetRoom();
      this.renderRoom();
      this.renderChannels();
    }
    this.input.focus();
  }

  leaveRoom() {
    this.stopTyping();
    for (const { timer } of this.typers.values()) clearTimeout(timer);
    this.typers.clear();
    this.renderTyping();
  }

  /** Show a channel: its newest messages now, or when the chat is opened. */
  select(channelId, focus = true) {
    this.say(null);
    if (channelId === this.openId && !this.draft) {
      if (!this.loaded && !this.element.hidden) this.enter();  // again, after a failed join
      return;
    }
    this.leaveRoom();
    this.openId = channelId;
    this.draft = null;
    this.resetRoom();
    this.renderRoom();
    this.renderChannels();
    if (!this.element.hidden) {
      this.enter();
      if (focus) this.input.focus();
    }
  }

  renderRoom() {
    const channel = this.channels.get(this.openId);
    const name = this.draft ? this.draft.name : channel ? this.nameOf(channel) : "Chat";
    this.title.textContent = channel?.kind === "channel" ? `# ${name}` : name;
    this.inputLabel.textContent = `Message ${name}`;
    this.input.placeholder = channel?.kind === "channel" ? `Message #${name}` : `Message ${name}`;
    show(this.list);
    this.older.hidden = true;
    this.renderStart();
  }

  renderStart() {
    const known = this.draft || this.loaded;
    this.start.hidden = !known || this.hasOlder;
    this.start.textContent = this.messages.size ? "This is the start of the conversation."
      : "No messages yet.";
    this.older.hidden = !this.hasOlder;
  }

  /** Join the open channel and take its newest page (again after a reconnect: merged). */
  async enter() {
    const channelId = this.openId;
    if (!channelId || this.joining === channelId) return;
    this.joining = channelId;
    let reply;
    try {
      reply = await this.live.call("chat:join", { channel_id: channelId, limit: PAGE });
    } catch (error) {
      this.say(`The channel could not be opened: ${error.message}`);
      return;
    } finally {
      if (this.joining === channelId) this.joining = null;
    }
    if (this.closed || this.openId !== channelId) return;
    const fresh = reply.messages;  // newest first
    const lowest = fresh.length ? fresh[fresh.length - 1].seq : 0;
    if (this.loaded && lowest > this.newest() + 1) {
      // away too long: what was here no longer joins on; start from this page
      this.resetRoom();
      show(this.list);
    }
    const atEnd = !this.loaded || this.nearBottom();
    if (!this.loaded) this.hasOlder = lowest > 1;
    this.loaded = true;
    this.channels.set(channelId, { ...this.channels.get(channelId), ...reply.channel });
    for (const message of fresh) this.place(message, true);
    for (const [message, replace] of this.early.splice(0)) {
      if (!this.messages.size || message.seq >= this.oldest()) this.place(message, replace);
    }
    this.renderStart();
    this.renderChannels();
    if (atEnd) this.scrollToEnd();
    this.markRead();
  }

  newest() {
    let top = 0;
    for (const seq of this.messages.keys()) top = Math.max(top, seq);
    return top;
  }

  oldest() {
    let low = Infinity;
    for (const seq of this.messages.keys()) low = Math.min(low, seq);
    return low;
  }

  nearBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** The page before the oldest message shown; the view stays where it was. */
  async loadOlder() {
    if (!this.loaded || !this.hasOlder || this.loadingOlder || !this.openId) return;
    const channelId = this.openId;
    this.loadingOlder = true;
    let reply;
    try {
      reply = await this.live.call("chat:history", { channel_id: channelId, before: this.oldest(), limit: PAGE });
    } catch (error) {
      this.say(`Older messages could not be loaded: ${error.message}`);
      return;
    } finally {
      this.loadingOlder = false;
    }
    if (this.closed || this.openId !== channelId) return;
    const fromBottom = this.log.scrollHeight - this.log.scrollTop;
    for (const message of reply.messages) this.place(message, false);
    this.hasOlder = reply.next !== null && reply.messages.length > 0;
    this.renderStart();
    this.log.scrollTop = this.log.scrollHeight - fromBottom;
  }

  /** Put a message of the open channel in its place by seq; false when it was there
   * already and `replace` is off (a duplicate). */
  place(message, replace) {
    const had = this.messages.get(message.seq);
    if (had && !replace) return false;
    if (had && had.id !== message.id) return false;
    this.messages.set(message.seq, message);
    if (had && this.editing === message.seq && !message.deleted_at) return false;  // keep the edit form
    if (this.editing === message.seq) this.editing = null;
    const item = this.item(message);
    const old = this.items.get(message.seq);
    if (old) {
      const focused = old.contains(document.activeElement);
      old.replaceWith(item);
      if (focused) (item.querySelector("button") || this.log).focus();
    } else {
      const after = [...this.list.children].find((li) => Number(li.dataset.seq) > message.seq);
      this.list.insertBefore(item, after || null);
    }
    this.items.set(message.seq, item);
    return !had;
  }

  item(message) {
    const mine = message.sender_id === this.me && message.sender_id;
    const deleted = Boolean(message.deleted_at);
    const classes = ["chat-msg", mine ? "mine" : "", deleted ? "deleted" : "",
      message.message_type === "system" ? "system" : ""].filter(Boolean).join(" ");
    return h("li", { className: classes, "data-seq": message.seq, "data-message-id": message.id },
      h("p", { className: "chat-meta" },
        h("span", { className: "chat-sender" }, message.sender_name || "Taskhub"),
        h("time", { datetime: message.created_at, title: new Date(message.created_at).toLocaleString() },
          stamp(message.created_at)),
        message.edited_at && !deleted ? h("span", { className: "chat-edited" }, "(edited)") : null),
      deleted ? h("p", { className: "chat-body chat-gone" }, "Message deleted")
        : h("p", { className: "chat-body" }, message.body),
      mine && !deleted && message.message_type === "text" ? this.actions(message) : null);
  }

  actions(message) {
    const box = h("div", { className: "chat-actions" });
    const normal = () => show(box,
      h("button", { type: "button", className: "link", onclick: () => this.startEdit(message.seq) }, "Edit"),
      h("button", { type: "button", className: "link", onclick: () => {
        const yes = h("button", { type: "button", className: "link danger-link",
          onclick: () => this.remove(message.seq) }, "Yes, delete");
        show(box, h("span", {}, "Delete this message?"), yes,
          h("button", { type: "button", className: "link", onclick: () => {
            normal();
            box.querySelector("button")?.focus();
          } }, "Keep it"));
        yes.focus();
      } }, "Delete"));
    normal();
    return box;
  }

  /** My message's text becomes a box: Enter saves, Escape gives up. */
  startEdit(seq) {
    const message = this.messages.get(seq);
    const item = this.items.get(seq);
    if (!message || !item) return;
    this.editing = seq;
    const id = `chat-edit-${message.id}`;
    const box = h("textarea", { id, rows: 2, maxlength: 10000,
      onkeydown: (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          this.endEdit(seq);
        } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.saveEdit(seq, box.value);
        }
      } });
    box.value = message.body;
    const form = h("form", { className: "chat-edit", onsubmit: (event) => {
      event.preventDefault();
      this.saveEdit(seq, box.value);
    } },
      h("label", { for: id, className: "sr-only" }, "Edit message"), box,
      h("div", { className: "chat-actions" },
        h("button", { type: "submit", className: "link" }, "Save"),
        h("button", { type: "button", className: "link", onclick: () => this.endEdit(seq) }, "Cancel")));
    item.querySelector(".chat-body").replaceWith(form);
    item.querySelector(":scope > .chat-actions")?.remove();
    box.focus();
  }

  /** Back to the message as it stands now, focus on its Edit button. */
  endEdit(seq) {
    if (this.editing !== seq) return;
    this.editing = null;
    const message = this.messages.get(seq);
    if (message) this.place(message, true);
    this.items.get(seq)?.querySelector("button")?.focus();
  }

  async saveEdit(seq, body) {
    const message = this.messages.get(seq);
    if (!message) return;
    if (!body.trim()) {
      this.say("A message cannot be empty; delete it instead.");
      return;
    }
    if (body === message.body) {
      this.endEdit(seq);
      return;
    }
    this.say(null);
    try {
      const reply = await this.live.call("chat:edit", { message_id: message.id, body });
      if (reply.message.channel_id !== this.openId) return;  // another channel is open by now
      this.editing = null;
      // place() keeps the focus on the message if it was in its edit box; the answer
      // may come after the person moved on, and must not take the focus back
      this.place(reply.message, true);
    } catch (error) {
      this.say(`The message was not changed: ${error.message}`);
    }
  }

  async remove(seq) {
    const message = this.messages.get(seq);
    if (!message) return;
    this.say(null);
    try {
      const reply = await this.live.call("chat:delete", { message_id: message.id });
      if (reply.message.channel_id !== this.openId) return;  // another channel is open by now
      this.place(reply.message, true);  // the focus, if still on it, goes to the log
    } catch (error) {
      this.say(`The message was not deleted: ${error.message}`);
    }
  }

  /** Send what is in the box (to the channel, or to the person of a new DM). */
  async send() {
    const body = this.input.value;
    if (!body.trim()) return;
    const target = this.draft ? { to_user_id: this.draft.userId } : this.openId ? { channel_id: this.openId } : null;
    if (!target) return;
    const key = JSON.stringify(target);
    // the same text again after a failure keeps its id: if the first did arrive, it is stored once
    if (!this.outgoing || this.outgoing.key !== key || this.outgoing.body !== body) {
      this.outgoing = { key, body, id: crypto.randomUUID() };
    }
    const outgoing = this.outgoing;
    this.stopTyping();
    this.say(null);
    this.input.value = "";
    let reply;
    try {
      reply = await this.live.call("chat:send", { ...target, body, client_msg_id: outgoing.id });
    } catch (error) {
      if (!this.input.value) this.input.value = body;
      this.say(`Not sent: ${error.message}`);
      return;
    }
    if (this.outgoing === outgoing) this.outgoing = null;
    if (this.closed) return;
    const message = reply.message;
    if (target.to_user_id) {
      if (!this.draft || this.draft.userId !== target.to_user_id) return;
      // the DM exists now: list it and open it
      if (!this.channels.has(message.channel_id)) await this.loadChannels();
      if (this.draft && this.draft.userId === target.to_user_id) {
        this.draft = null;
        this.select(message.channel_id, false);
      }
      return;
    }
    this.seen(message);
    if (message.channel_id === this.openId && this.loaded) {
      this.place(message, false);
      this.renderStart();
      this.scrollToEnd();
      this.markRead();
    }
  }

  /** Note a message's seq as the channel's latest; true when it is new here. */
  seen(message) {
    const channel = this.channels.get(message.channel_id);
    if (!channel) return false;
    const fresh = message.seq > (channel.last_seq || 0);
    if (fresh) channel.last_seq = message.seq;
    return fresh;
  }

  /** A live message: placed if its channel is open, counted if it is not read. */
  received(message) {
    const channel = this.channels.get(message.channel_id);
    if (!channel) {
      this.reloadSoon();  // a DM someone just started with me, or a channel I was added to
      return;
    }
    const fresh = this.seen(message);
    if (message.channel_id === this.openId && !this.loaded) this.early.push([message, false]);
    const open = message.channel_id === this.openId && this.loaded;
    if (open) {
      const follow = this.nearBottom() || message.sender_id === this.me;
      if (this.place(message, false)) {
        this.renderStart();
        if (follow) this.scrollToEnd();
      }
      this.typingStopped(message.sender_id);
    }
    if (message.sender_id === this.me) return;
    if (open && this.visible) this.markRead();
    else if (fresh && message.seq > (channel.last_read_seq || 0)) {
      channel.unread = (channel.unread || 0) + 1;
      (channel.counted ??= new Set()).add(message.seq);
      this.renderChannels();
    }
  }

  /** An edit or a delete, by anyone. */
  changed(message) {
    if (message.channel_id === this.openId && !this.loaded) this.early.push([message, true]);
    if (message.channel_id === this.openId && this.messages.has(message.seq)) this.place(message, true);
    const channel = this.channels.get(message.channel_id);
    if (message.deleted_at && channel && message.sender_id !== this.me && channel.unread > 0 &&
        message.seq > (channel.last_read_seq || 0) && !this.uncounted.has(message.id)) {
      this.uncounted.add(message.id);
      channel.unread -= 1;  // an unread message that is gone is not unread any more
      this.renderChannels();
    }
  }

  reloadSoon() {
    clearTimeout(this.reload);
    this.reload = setTimeout(async () => {
      if (this.closed) return;
      const before = new Set(this.channels.keys());
      if (!(await this.loadChannels())) return;
      for (const channel of this.channels.values()) {
        if (!before.has(channel.id) && channel.kind === "channel" && !channel.is_board_channel) {
          this.joinRoom(channel.id);
        }
      }
    }, 100);
  }

  /** I was made a member of a channel (from anywhere): list it and hear it. */
  added(channel) {
    if (!this.listed(channel) || this.channels.has(channel.id)) return;
    this.channels.set(channel.id, channel);
    if (channel.kind === "channel" && !channel.is_board_channel) this.joinRoom(channel.id);
    this.renderChannels();
  }

  /** My read marker moved, here or in another tab. */
  readElsewhere(body) {
    const channel = this.channels.get(body.channel_id);
    if (!channel) return;
    channel.last_read_seq = Math.max(channel.last_read_seq || 0, body.last_read_seq);
    channel.unread = body.unread;
    this.renderChannels();
  }

  /** The open channel is read up to its newest message, if the person can see it. */
  async markRead() {
    if (!this.visible || !this.openId || !this.loaded) return;
    const channel = this.channels.get(this.openId);
    const seq = this.newest();
    if (!channel || (seq <= (channel.last_read_seq || 0) && !channel.unread)) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
      const reply = await this.live.call("chat:read", { channel_id: channel.id, seq });
      this.readElsewhere(reply);
    } catch (error) {
      this.say(`Could not mark the channel read: ${error.message}`);
    } finally {
      this.reading = false;
    }
    if (this.readAgain) {
      this.readAgain = false;
      this.markRead();
    }
  }

  /** A key in the message box: say "typing" now and then, and "stopped" when idle. */
  typed() {
    if (!this.openId) return;
    if (!this.input.value.trim()) {
      this.stopTyping();
      return;
    }
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
    if (this.typingIn === this.openId && Date.now() - this.typingSaidAt < TYPING_EVERY_MS) return;
    this.typingIn = this.openId;
    this.typingSaidAt = Date.now();
    this.sayTyping(this.openId, true);
  }

  stopTyping() {
    clearTimeout(this.idle);
    if (!this.typingIn) return;
    const channelId = this.typingIn;
    this.typingIn = null;
    this.typingSaidAt = 0;
    this.sayTyping(channelId, false);
  }

  /** Best effort: typing is a hint that is stale in seconds, so it is not sent
   * while offline (it would arrive late) and a refusal is not worth an alert
   * (the send that follows reports what is wrong). */
  async sayTyping(channelId, typing) {
    if (!this.live.connected) return;
    try {
      await this.live.call("chat:typing", { channel_id: channelId, typing });
    } catch {
      // see above
    }
  }

  heardTyping(body) {
    if (body.user_id === this.me || body.channel_id !== this.openId) return;
    if (!body.typing) {
      this.typingStopped(body.user_id);
      return;
    }
    clearTimeout(this.typers.get(body.user_id)?.timer);
    const timer = setTimeout(() => this.typingStopped(body.user_id), TYPING_SHOWN_MS);
    this.typers.set(body.user_id, { name: body.name, timer });
    this.renderTyping();
  }

  typingStopped(userId) {
    const typer = this.typers.get(userId);
    if (!typer) return;
    clearTimeout(typer.timer);
    this.typers.delete(userId);
    this.renderTyping();
  }

  renderTyping() {
    this.typingLine.textContent = typingText([...this.typers.values()].map((t) => t.name));
  }
}
