// One board, live: columns by status, cards from the board:join snapshot, and every
// task event of the room applied in seq order (a seq already applied is dropped).
// Reconnects join again with since_seq, so the board catches up without a reload.

import { ChatPanel } from "./chat.js";
import { arrange, h, show } from "./dom.js";
import { TaskFilters } from "./filters.js";
import { MembersBox } from "./members.js";
import { TaskPanel } from "./panel.js";

const COLUMNS = [
  ["todo", "To do"],
  ["in_progress", "In progress"],
  ["review", "Review"],
  ["done", "Done"],
  ["cancelled", "Cancelled"],
];

let current = null;
const UNDO_MS = 5000;

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((part) => part[0].toUpperCase()).join("");
}

export async function openBoard(view, api, live, boardId) {
  current?.close();
  current = new BoardPage(view, api, live, boardId);
  current.start();
}

/** Leaving the board (another view, or logging out). */
export function closeBoard() {
  current?.close();
  current = null;
}

class BoardPage {
  constructor(view, api, live, boardId) {
    this.view = view;
    this.api = api;
    this.live = live;
    this.boardId = boardId;
    this.tasks = new Map();
    this.people = new Map();  // who is on the board now: id -> name
    this.members = new Map();  // who belongs to it: id -> name
    this.filters = new TaskFilters(() => this.render());
    this.highlights = new Map();  // task id -> who changed it a moment ago
    this.cards = new Map();  // task id -> {signature, element} as last drawn
    this.seq = null;
    this.waiting = [];  // events that came after a gap, until the catch-up fills it
    this.catchingUp = null;  // the join that fills a gap, while it runs
    this.board = null;
    this.banner = document.getElementById("banner");
    this.area = h("div", { className: "board-area" });
    this.panel = new TaskPanel((event, payload) => this.call(event, payload), (event) => this.apply(event),
      (task) => this.remove(task), () => this.members);
    this.membersBox = new MembersBox(api, boardId, () => this.loadMembers().then(() => this.render()));
    this.chat = new ChatPanel(live, api, boardId, () => this.members);
    this.toast = h("div", { className: "toast", role: "status", hidden: true });
    this.pendingDeletes = new Map();  // task id -> timer of the delete not sent yet
    this.moving = new Map();  // task id -> its moves being sent (see move())
    this.flushDeletes = () => { for (const id of [...this.pendingDeletes.keys()]) this.sendDelete(id); };
    window.addEventListener("pagehide", this.flushDeletes);
    this.stops = [];
  }

  start() {
    show(this.view, this.area, this.panel.element, this.toast);
    show(this.area, h("p", { className: "muted" }, "Opening the board…"));
    const on = (event, fn) => this.stops.push(this.live.on(event, fn));
    this.stops.push(this.live.whenConnected(() => this.join()));
    on("disconnect", (reason) => {
      if (reason !== "io client disconnect") this.say("Connection lost. Reconnecting…");
    });
    on("connect_error", (error) => this.say(`Cannot connect: ${error.message}. Retrying…`));
    for (const event of ["task:created", "task:updated", "task:deleted"]) on(event, (body) => this.apply(body));
    on("presence", (body) => {
      if (body.board_id !== this.boardId) return;
      if (body.state === "joined") this.people.set(body.user.id, body.user.name);
      else this.people.delete(body.user.id);
      this.renderPeople();
      if (body.state === "joined" && !this.members.has(body.user.id)) {
        this.loadMembers().then(() => this.render());
      }
    });
  }

  close() {
    this.flushDeletes();
    this.closed = true;
    window.removeEventListener("pagehide", this.flushDeletes);
    for (const stop of this.stops.splice(0)) stop();
    this.chat.close();
    if (this.live.connected) this.live.call("board:leave", { board_id: this.boardId }).catch(() => {});
    this.say(null);
  }

  say(message) {
    if (this.closed && message) return;  // a late answer of a board that was left
    this.banner.hidden = !message;
    this.banner.textContent = message || "";
  }

  call(event, payload) {
    return this.live.call(event, payload);
  }

  /** Join the board's room, or join again with since_seq: the reply holds what
   * came since. Returns whether it worked. */
  async join() {
    const payload = { board_id: this.boardId };
    if (this.seq !== null) payload.since_seq = this.seq;
    let reply;
    try {
      reply = await this.call("board:join", payload);
    } catch (error) {
      this.built = false;
      show(this.area, h("p", { className: "error", role: "alert" }, error.message));
      return false;
    }
    this.say(null);
    this.board = reply.board;
    this.people = new Map(reply.presence.map((user) => [user.id, user.name]));
    await this.loadMembers();
    if (reply.mode === "snapshot") {
      this.tasks = new Map(reply.tasks.map((task) => [task.id, this.withPendingMove(task)]));
      this.seq = reply.seq;
    } else {
      for (const event of reply.events) this.apply(event, false);
      this.seq = Math.max(this.seq ?? 0, reply.seq);
    }
    this.render();
    return true;
  }

  apply(event, render = true) {
    if (event.board_id !== this.boardId) return;
    if (this.seq !== null && event.seq <= this.seq) return;
    if (this.seq !== null && event.seq > this.seq + 1) {
      // One is missing: its node lost the link to the others for a moment, say.
      // Fetch what came since the last one, then apply this one in its turn.
      this.waiting.push(event);
      this.catchUp();
      return;
    }
    this.seq = event.seq;
    if (event.actor_id && event.actor_id !== this.api.user?.id) this.highlight(event);
    const assignee = event.task.assignee_id;
    if (assignee && !this.members.has(assignee) && this.built) {
      this.loadMembers().then(() => this.render());
    }
    if (event.task.deleted_at) this.tasks.delete(event.task.id);
    else this.tasks.set(event.task.id, this.withPendingMove(event.task));
    this.panel.changed(event.task);
    if (render) this.render();
  }

  /** Fill a gap in the board's seqs with a join from the last seq; the events
   * that came after the gap are applied once it is filled. A failed join leaves
   * them waiting for the next event or reconnect to try again. */
  catchUp() {
    if (this.catchingUp || this.closed) return;
    this.catchingUp = this.join().then((filled) => {
      this.catchingUp = null;
      if (!filled) return;
      const waiting = this.waiting.splice(0).sort((a, b) => a.seq - b.seq);
      for (const event of waiting) this.apply(event, false);
      this.render();
    });
  }

  /** Who belongs to the board, for assignee names and pickers; asked again when
   * someone not yet known shows up (a member added since). */
  async loadMembers() {
    try {
      const { members } = await this.call("board:members", { board_id: this.boardId });
      this.members = new Map(members.map((m) => [m.user_id, m.name]));
      this.membersBox.update(members);
    } catch {
      // names are a nicety: the board works without them
    }
  }

  /** Delete with undo: the card goes at once, and the delete is sent when the
   * undo time is up (or the page is left); undo before that costs nothing. */
  remove(task) {
    this.pendingDeletes.set(task.id, setTimeout(() => this.sendDelete(task.id), UNDO_MS));
    this.render();
    const undo = h("button", { type: "button", className: "link", onclick: () => {
      clearTimeout(this.pendingDeletes.get(task.id));
      this.pendingDeletes.delete(task.id);
      this.toast.hidden = true;
      this.render();
      this.view.querySelector(`[data-task-id="${task.id}"] .open`)?.focus();
    } }, "Undo");
    show(this.toast, `Deleted "${task.title}". `, undo);
    this.toast.hidden = false;
    undo.focus();
  }

  async sendDelete(id) {
    clearTimeout(this.pendingDeletes.get(id));
    this.pendingDeletes.delete(id);
    this.toast.hidden = true;
    const task = this.tasks.get(id);
    if (!task) return;
    try {
      this.apply(await this.call("task:delete", { task_id: id, base_version: task.version, op_id: crypto.randomUUID() }));
    } catch (error) {
      this.render();
      this.say(`"${task.title}" was not deleted: ${error.message}`);
    }
  }

  /** A short highlight of a card someone else just changed, naming them. */
  highlight(event) {
    const who = this.people.get(event.actor_id) || "Someone";
    const id = event.task.id;
    clearTimeout(this.highlights.get(id)?.timer);
    const timer = setTimeout(() => {
      this.highlights.delete(id);
      this.view.querySelector(`[data-task-id="${id}"]`)?.classList.remove("changed");
      this.view.querySelector(`[data-task-id="${id}"] .by`)?.remove();
    }, 2500);
    this.highlights.set(id, { who, timer });
  }

  assigneeAvatar(userId) {
    const name = this.members.get(userId) || "a former member";
    return h("span", { className: "avatar small", title: `Assigned to ${name}` },
      h("span", { "aria-hidden": "true" }, initials(name)), h("span", { className: "sr-only" }, `Assigned to ${name}`));
  }

  renderPeople() {
    if (!this.peopleList) return;
    show(this.peopleList, ...[...this.people].map(([id, name]) =>
      h("li", { className: "avatar", title: name, "data-user-id": id },
        h("span", { "aria-hidden": "true" }, initials(name)), h("span", { className: "sr-only" }, name))));
  }

  /** The page's frame, built once per join: head, filters, columns and the add
   * form stay in place (and keep focus and typed text) while cards re-render. */
  build() {
    this.peopleList = h("ul", { className: "people", "aria-label": "On this board now" });
    this.lists = new Map();
    this.counts = new Map();
    const columns = COLUMNS.map(([status, title]) => {
      const list = h("ol", { className: "cards", "aria-label": `${title} tasks`,
        ondragover: (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "move"; },
        ondrop: (event) => {
          event.preventDefault();
          const id = event.dataTransfer.getData("text/x-task-id");
          if (id) this.move(id, status, this.dropPosition(list, event.clientY, id));
        } });
      const count = h("span", { className: "count" });
      this.lists.set(status, list);
      this.counts.set(status, count);
      return status === "cancelled"
        ? h("details", { className: "column collapsed" }, h("summary", {}, title, count), list)
        : h("section", { className: "column", "aria-labelledby": `col-${status}` },
            h("h2", { id: `col-${status}` }, title, count),
            list, status === "todo" ? this.createForm() : null);
    });
    show(this.area,
      h("p", { id: "card-keys", className: "sr-only" }, "Alt+Up or Alt+Down moves it within its column."),
      h("div", { className: "board-head" }, h("a", { href: "#/boards" }, "← My boards"),
        h("h1", {}, this.board.name), this.peopleList, this.membersBox.element, this.chat.toggle),
      h("div", { className: "board-layout" },
        h("div", { className: "board-main" }, this.filters.element, h("div", { className: "columns" }, columns)),
        this.chat.element));
    this.built = true;
  }

  render() {
    if (this.closed || !this.board) return;  // left, or events before the join's reply
    if (!this.built) this.build();
    this.renderPeople();
    this.filters.offer(this.tasks.values(), this.members);
    const focused = document.activeElement?.closest?.("[data-task-id]");
    const focusId = focused?.dataset.taskId;
    const focusClass = focusId ? document.activeElement.className : null;
    const drawn = new Map();
    for (const [status] of COLUMNS) {
      const cards = [...this.tasks.values()]
        .filter((task) => task.status === status && !this.pendingDeletes.has(task.id))
        .filter((task) => this.filters.matches(task))
        .sort((a, b) => a.position - b.position);
      arrange(this.lists.get(status), cards.map((task) => this.cardElement(task, drawn)));
      this.counts.get(status).textContent = String(cards.length);
    }
    this.cards = drawn;
    // a card that changed column was taken out of one list and put in another
    if (focusId && focusClass && !this.view.contains(document.activeElement)) {
      this.view.querySelector(`[data-task-id="${focusId}"] .${focusClass.split(" ")[0]}`)?.focus();
    }
  }

  /** A card's element: the one drawn before while the card reads the same, so a
   * click or the focus on it survives another person's live edit elsewhere. */
  cardElement(task, drawn) {
    const changedBy = this.highlights.get(task.id)?.who;
    const signature = JSON.stringify([task.title, task.status, task.priority, task.due_date,
      task.is_delayed, task.tags, task.assignee_id, this.members.get(task.assignee_id), changedBy]);
    const had = this.cards.get(task.id);
    const card = had?.signature === signature ? had : { signature, element: this.card(task) };
    drawn.set(task.id, card);
    return card.element;
  }

  /** Alt+ArrowUp / Alt+ArrowDown on a card: one place up or down its column. */
  nudge(taskId, step) {
    const task = this.tasks.get(taskId);
    if (!task) return;
    const shown = [...this.lists.get(task.status).querySelectorAll("li.task")];
    const at = shown.findIndex((li) => li.dataset.taskId === taskId);
    const position = (index) => this.tasks.get(shown[index]?.dataset.taskId)?.position;
    const passed = position(at + step);
    if (at < 0 || passed === undefined) return;
    const beyond = position(at + 2 * step);
    this.move(taskId, task.status, beyond === undefined ? passed + step * 1024 : (passed + beyond) / 2);
  }

  card(task) {
    const due = task.due_date ? new Date(task.due_date) : null;
    const move = h("select", { className: "move", "aria-label": `Move "${task.title}" to`,
      onchange: (event) => this.move(task.id, event.target.value, null) },
      COLUMNS.map(([status, title]) => h("option", { value: status, selected: status === task.status }, title)));
    const changedBy = this.highlights.get(task.id)?.who;
    return h("li", { className: changedBy ? "task changed" : "task", "data-task-id": task.id, draggable: "true",
      ondragstart: (event) => {
        event.dataTransfer.setData("text/x-task-id", task.id);
        event.dataTransfer.effectAllowed = "move";
      } },
      h("p", { className: "title" }, h("button", { type: "button", className: "open",
        "aria-label": `Edit "${task.title}"`, "aria-describedby": "card-keys",
        "aria-keyshortcuts": "Alt+ArrowUp Alt+ArrowDown",
        onclick: (event) => this.panel.open(this.tasks.get(task.id), event.currentTarget),
        onkeydown: (event) => {
          if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
          event.preventDefault();
          this.nudge(task.id, event.key === "ArrowUp" ? -1 : 1);
        } }, task.title)),
      h("p", { className: "meta" },
        h("span", { className: `priority priority-${task.priority}` }, task.priority),
        due ? h("time", { datetime: task.due_date, className: task.is_delayed ? "late" : "" },
          due.toLocaleDateString()) : null,
        task.tags.map((tag) => h("span", { className: "tag" }, tag)),
        task.assignee_id ? this.assigneeAvatar(task.assignee_id) : null),
      changedBy ? h("p", { className: "by" }, `Changed by ${changedBy}`) : null,
      move);
  }

  /** Where a card dropped on `list` at height `y` goes: between its neighbours. */
  dropPosition(list, y, movingId) {
    const cards = [...list.querySelectorAll("li.task")].filter((li) => li.dataset.taskId !== movingId);
    const below = cards.findIndex((li) => y < li.getBoundingClientRect().top + li.offsetHeight / 2);
    const at = (index) => this.tasks.get(cards[index]?.dataset.taskId)?.position;
    const before = below === -1 ? at(cards.length - 1) : at(below - 1);
    const after = below === -1 ? undefined : at(below);
    if (before === undefined && after === undefined) return 1024;
    if (before === undefined) return after - 1024;
    if (after === undefined) return before + 1024;
    return (before + after) / 2;
  }

  /** Optimistic: the card moves at once and goes back, with the reason, if the hub says no.
   *
   * One move of a card is on its way at a time. A move asked before the hub answered
   * the previous one (a quick second Alt+Up) waits for that answer and goes with the
   * version it carries: sent with the older version, the hub would take it for a
   * conflict with the first. Only the latest waiting move is sent. */
  move(taskId, status, position) {
    const task = this.tasks.get(taskId);
    if (!task) return;
    if (position === null) {
      const column = [...this.tasks.values()].filter((t) => t.status === status && t.id !== taskId);
      position = column.length ? Math.max(...column.map((t) => t.position)) + 1024 : 1024;
    }
    if (status === task.status && position === task.position) return;
    const moving = this.moving.get(taskId);
    if (moving) moving.next = { status, position };
    else this.moving.set(taskId, { confirmed: task, sent: null, next: { status, position } });
    this.tasks.set(taskId, { ...task, status, position });
    this.render();
    if (!moving) this.sendMoves(taskId);
  }

  /** Sends the moves of one card one after the other (see move()). */
  async sendMoves(taskId) {
    const moving = this.moving.get(taskId);
    while (moving.next && this.tasks.has(taskId)) {
      moving.sent = moving.next;
      moving.next = null;
      try {
        const event = await this.call("task:move", { task_id: taskId,
          base_version: this.tasks.get(taskId).version, ...moving.sent, op_id: crypto.randomUUID() });
        this.apply(event);
      } catch (error) {
        // back to where the hub has it: the moves still waiting go too
        this.moving.delete(taskId);
        if (this.tasks.has(taskId)) this.tasks.set(taskId, moving.confirmed);
        this.render();
        this.say(`"${moving.confirmed.title}" was not moved: ${error.message}`);
        setTimeout(() => this.say(null), 6000);
        return;
      }
    }
    this.moving.delete(taskId);
  }

  /** A task as the hub has it, kept as the card's last confirmed state while this page
   * is moving the card, and shown where the page is moving it. */
  withPendingMove(task) {
    const moving = this.moving.get(task.id);
    if (!moving) return task;
    moving.confirmed = task;
    const { status, position } = moving.next ?? moving.sent;
    return { ...task, status, position };
  }

  createForm() {
    const title = h("input", { type: "text", name: "title", required: true, maxlength: 200,
      placeholder: "Add a task", "aria-label": "New task title" });
    const error = h("p", { className: "error", role: "alert" });
    return h("form", { className: "add-task", onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      // the box is emptied now, not at the ack: the next title may be typed by then
      const text = title.value.trim();
      if (!text) return;
      title.value = "";
      try {
        const created = await this.call("task:create", {
          board_id: this.boardId, title: text, op_id: crypto.randomUUID() });
        this.apply(created);
      } catch (e) {
        if (!title.value) title.value = text;
        error.textContent = e.message;
      }
    } }, title, error);
  }
}
