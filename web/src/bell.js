// The bell in the top bar: my notifications. The unread count comes from the hub
// (`notifications:list` on each connect, then `notification` and
// `notifications:unread` live), never from counting what happens to be loaded:
// the list is paged, and my other tabs read notifications too. Everything is
// dropped when the user logs out or another logs in, so nobody sees the last
// person's notifications.

import { arrange, h, show } from "./dom.js";

const PAGE = 20;

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A drawn bell: an emoji needs a colour-emoji font, which many Linux desktops lack. */
function bellIcon() {
  const icon = h("span", { className: "bell-icon", "aria-hidden": "true" });
  icon.innerHTML = '<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" '
    + 'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/>'
    + '<path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/></svg>';
  return icon;
}

export class Bell {
  /** `slot` is the top bar's place for the bell; `live` the session's socket. */
  constructor(live, api, slot) {
    this.live = live;
    this.api = api;
    this.slot = slot;
    this.userId = null;
    this.generation = 0;  // bumped on every reset: answers to older loads are dropped
    this.reset();
    this.badge = h("span", { className: "bell-badge", "aria-hidden": "true", hidden: true });
    this.button = h("button", { type: "button", className: "bell-button", "aria-expanded": "false",
      "aria-controls": "bell-popover", onclick: () => (this.isOpen() ? this.close() : this.open()) },
      bellIcon(), this.badge);
    this.list = h("ul", { className: "bell-list", "aria-label": "My notifications" });
    this.error = h("p", { className: "bell-error", role: "alert" });
    this.more = h("button", { type: "button", className: "bell-more", hidden: true,
      onclick: () => this.load(this.next) }, "Show more");
    this.markAll = h("button", { type: "button", className: "bell-mark-all",
      onclick: () => this.read({ all: true }) }, "Mark all read");
    this.popover = h("section", { id: "bell-popover", className: "bell-popover", hidden: true,
      "aria-labelledby": "bell-heading" },
      h("div", { className: "bell-head" }, h("h2", { id: "bell-heading" }, "Notifications"), this.markAll),
      this.error, this.list, this.more);
    // a polite status region: a screen reader says a new notification without moving focus
    this.announcer = h("p", { className: "sr-only", role: "status" });
    show(this.slot, this.button, this.popover, this.announcer);
    this.slot.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen()) {
        event.stopPropagation();
        this.close();
      }
    });
    this.outside = (event) => { if (!this.slot.contains(event.target)) this.close(false); };
    live.on("notification", (note) => this.arrived(note));
    live.on("notifications:unread", ({ unread }) => {
      // read on another tab: which ones is not said, so the list is asked again
      const reload = unread > 0 && unread !== this.unread;
      this.setUnread(unread);
      if (reload) this.load(null);
    });
    live.whenConnected(() => this.load(null));
    api.onToken((token) => {
      const userId = token ? this.api.user?.id ?? null : null;
      if (userId !== this.userId) {
        this.userId = userId;
        this.reset();
        this.render();
        this.close(false);
      }
    });
    this.render();
  }

  reset() {
    this.generation += 1;
    this.notes = [];  // as listed: unread first, then newest first
    this.items = new Map();  // notification id -> {signature, element} as last drawn
    this.unread = 0;
    this.next = null;
    if (this.announcer) this.announcer.textContent = "";
  }

  isOpen() {
    return !this.popover.hidden;
  }

  open() {
    this.popover.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    document.addEventListener("click", this.outside, true);
  }

  /** Closes the list; focus goes back to the bell unless the click went elsewhere. */
  close(refocus = true) {
    if (!this.isOpen()) return;
    this.popover.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    document.removeEventListener("click", this.outside, true);
    if (refocus) this.button.focus();
  }

  /** The first page (`before` null, replacing the list) or the page after `before`. */
  async load(before) {
    if (!this.api.user) return;
    const generation = this.generation;
    const payload = { limit: PAGE };
    if (before) payload.before = before;
    try {
      const page = await this.live.call("notifications:list", payload);
      if (generation !== this.generation) return;
      if (!before) this.notes = [];
      const known = new Set(this.notes.map((n) => n.id));
      this.notes.push(...page.notifications.filter((n) => !known.has(n.id)));
      this.next = page.next;
      this.unread = page.unread;
      this.error.textContent = "";
    } catch (e) {
      if (generation !== this.generation) return;
      this.error.textContent = `Notifications could not be loaded: ${e.message}`;
    }
    this.render();
  }

  arrived(note) {
    if (!this.userId || note.user_id !== this.userId) return;
    if (this.notes.some((n) => n.id === note.id)) return;
    this.notes.unshift(note);
    if (!note.read_at) this.unread += 1;
    this.render();
    this.announcer.textContent = `New notification: ${note.title}`;
  }

  setUnread(unread) {
    this.unread = unread;
    if (unread === 0) {
      const now = new Date().toISOString();
      for (const note of this.notes) note.read_at ??= now;
    }
    this.render();
  }

  /** `notifications:read` with `ids` or `all`; the hub's answer is the new count. */
  async read(payload) {
    const generation = this.generation;
    try {
      const { unread } = await this.live.call("notifications:read", payload);
      if (generation !== this.generation) return;
      const now = new Date().toISOString();
      for (const note of this.notes) {
        if (payload.all || payload.ids.includes(note.id)) note.read_at ??= now;
      }
      this.error.textContent = "";
      this.setUnread(unread);
    } catch (e) {
      if (generation === this.generation) this.error.textContent = `Not marked read: ${e.message}`;
    }
  }

  render() {
    const count = this.unread;
    this.button.setAttribute("aria-label", `Notifications, ${count ? `${count} unread` : "none unread"}`);
    this.badge.hidden = count === 0;
    this.badge.textContent = count > 99 ? "99+" : String(count);
    this.renderList();
  }

  renderList() {
    this.markAll.disabled = this.unread === 0;
    this.more.hidden = !this.next;
    if (!this.notes.length) {
      show(this.list, h("li", { className: "bell-empty" }, "No notifications yet."));
      return;
    }
    // an item keeps its element while it reads the same: a click or the focus on it
    // survives a notification arriving meanwhile
    const items = new Map();
    arrange(this.list, this.notes.map((note) => {
      const signature = note.read_at ? "read" : "unread";
      const had = this.items.get(note.id);
      const item = had?.signature === signature ? had : { signature, element: this.item(note) };
      items.set(note.id, item);
      return item.element;
    }));
    this.items = items;
  }

  item(note) {
    const unread = !note.read_at;
    const activate = () => { if (!note.read_at) this.read({ ids: [note.id] }); };
    const body = [
      h("span", { className: "bell-state" }, unread ? "Unread" : "Read"),
      h("strong", { className: "bell-title" }, note.title),
      h("span", { className: "bell-message" }, note.message),
      h("time", { className: "bell-time", datetime: note.created_at }, when(note.created_at)),
    ];
    const control = note.board_id
      ? h("a", { className: "bell-open", href: `#/boards/${note.board_id}`,
          onclick: () => { activate(); this.close(false); } }, body)
      : h("button", { type: "button", className: "bell-open", onclick: activate,
          "aria-disabled": unread ? null : "true" }, body);
    return h("li", { className: unread ? "bell-note unread" : "bell-note", "data-notification-id": note.id }, control);
  }
}
