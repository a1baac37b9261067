// The side panel that edits one task. An edit is sent with the version the panel
// opened at: the hub merges it when nobody touched the same fields since, and
// otherwise answers version_conflict; then the panel shows both values of each
// conflicting field and the person keeps theirs or takes the other one. Nothing
// is dropped without asking.
// A due date is picked as a day and sent as the end of that day in the browser's
// time zone (what the card shows is the day in the viewer's zone). Reminders are
// the person's own (others' stay private); the hub fires them, so after one is due
// the panel asks for the list again to show what became of it.

import { h, show } from "./dom.js";

const PRIORITIES = ["low", "medium", "high", "urgent"];
const LABELS = { title: "Title", description: "Description", priority: "Priority", tags: "Tags",
  assignee_id: "Assignee", due_date: "Due date" };
const METHODS = [["in_app", "In the app"], ["email", "Email"], ["push", "Push"], ["sms", "Text message"]];
const RECHECK_MS = 1500;  // after a reminder's time, when to ask how it went
const OVERDUE_RECHECK_MS = 10_000;
const MAX_WAIT_MS = 2 ** 31 - 1;  // setTimeout's longest delay

const pad = (n) => String(n).padStart(2, "0");

/** `date` as an ISO string in the browser's time zone, with its offset. */
function localIso(date) {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

/** The local day (yyyy-mm-dd, as `<input type="date">` holds it) of an ISO time. */
function localDay(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The end of a picked day in local time, as the hub takes it; null for none. */
function dueOf(day) {
  if (!day) return null;
  const [year, month, date] = day.split("-").map(Number);
  return localIso(new Date(year, month - 1, date, 23, 59, 59));
}

/** A `datetime-local` value, read in the browser's time zone. */
function localTime(value) {
  const [day, time] = value.split("T");
  const [year, month, date] = day.split("-").map(Number);
  const [hours, minutes, seconds = 0] = time.split(":").map(Number);
  return new Date(year, month - 1, date, hours, minutes, Math.floor(seconds));
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

function tagsOf(text) {
  return [...new Set(text.split(",").map((tag) => tag.trim()).filter(Boolean))];
}

function shown(field, value, names) {
  if (field === "assignee_id") return value ? names.get(value) || "a former member" : "(nobody)";
  if (field === "tags") return value.length ? value.join(", ") : "(none)";
  if (field === "due_date") return value ? new Date(value).toLocaleDateString() : "(none)";
  if (value === null || value === "") return "(empty)";
  return String(value);
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class TaskPanel {
  /** `call(event, payload)` asks the hub; `applied(event)` takes the ack's event;
   * `remove(task)` deletes the task (with undo); `members()` names the board's people. */
  constructor(call, applied, remove, members) {
    this.members = members;
    this.call = call;
    this.applied = applied;
    this.remove = remove;
    this.element = h("aside", { className: "panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "panel-title", hidden: true,
      onkeydown: (event) => { if (event.key === "Escape") this.close(); } });
    this.task = null;
  }

  open(task, opener) {
    this.task = task;
    this.opener = opener;
    this.element.hidden = false;
    this.renderForm(task);
  }

  close() {
    this.element.hidden = true;
    this.task = null;
    clearTimeout(this.recheck);
    this.opener?.focus();
  }

  /** A newer version of the open task arrived from someone else. */
  changed(task) {
    if (this.task && task.id === this.task.id && this.note) {
      this.note.textContent = "Someone else changed this task. Saving merges your edits with theirs.";
    }
  }

  renderForm(base, draft = {}) {
    const value = (field) => (field in draft ? draft[field] : base[field]);
    const title = h("input", { type: "text", required: true, maxlength: 255, value: value("title") });
    const description = h("textarea", { rows: 5, maxlength: 20000 });
    description.value = value("description") ?? "";
    const priority = h("select", {}, PRIORITIES.map((p) => h("option", { value: p, selected: p === value("priority") }, p)));
    const tags = h("input", { type: "text", value: value("tags").join(", "), "aria-describedby": "tags-help" });
    const assignee = h("select", {}, h("option", { value: "" }, "Nobody"),
      [...this.members()].map(([id, name]) => h("option", { value: id, selected: id === value("assignee_id") }, name)));
    const due = h("input", { type: "date", id: "task-field-due-date", value: localDay(value("due_date")) });
    const clearDue = h("button", { type: "button", onclick: () => { due.value = ""; due.focus(); } },
      "No due date");
    const error = h("p", { className: "error", role: "alert" });
    this.note = h("p", { className: "muted", "aria-live": "polite" });
    const field = (label, input, help) => {
      input.id = `task-field-${label.toLowerCase()}`;
      return h("div", { className: "field" }, h("label", { for: input.id }, label), input, help);
    };
    const form = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      const edited = { title: title.value.trim(), description: description.value || null,
        priority: priority.value, tags: tagsOf(tags.value), assignee_id: assignee.value || null,
        // the same day as before keeps its time (set elsewhere, perhaps not at the end of the day)
        due_date: due.value === localDay(base.due_date) ? base.due_date : dueOf(due.value) };
      const changes = Object.fromEntries(Object.entries(edited).filter(([k, v]) => !same(v, base[k])));
      if (!Object.keys(changes).length) return this.close();
      await this.save(base, changes, error);
    } },
      h("h2", { id: "panel-title" }, "Edit task"),
      field("Title", title), field("Description", description), field("Priority", priority), field("Assignee", assignee),
      h("div", { className: "field" }, h("label", { for: due.id }, "Due date"),
        h("div", { className: "field-row" }, due, clearDue)),
      field("Tags", tags, h("small", { id: "tags-help", className: "muted" }, "Separate tags with commas.")),
      this.note, error,
      h("div", { className: "actions" },
        h("button", { type: "submit", className: "primary" }, "Save"),
        h("button", { type: "button", onclick: () => this.close() }, "Cancel"),
        h("button", { type: "button", className: "danger", onclick: () => {
          const task = this.task;
          this.close();
          this.remove(task);
        } }, "Delete")));
    show(this.element, form, this.reminders(base));
    title.focus();
  }

  /** The "Reminders" part: my reminders on this task, and a form to set one. */
  reminders(task) {
    clearTimeout(this.recheck);
    const list = h("ul", { className: "reminder-list", "aria-label": "My reminders" },
      h("li", { className: "muted" }, "Loading reminders…"));
    const error = h("p", { className: "error", role: "alert" });
    const at = h("input", { type: "datetime-local", step: 1, required: true, id: "reminder-at" });
    const method = h("select", { id: "reminder-method" },
      METHODS.map(([value, label]) => h("option", { value, selected: value === "in_app" }, label)));
    const submit = h("button", { type: "submit" }, "Set reminder");
    const current = () => this.task?.id === task.id;
    const render = (reminders) => {
      if (!current()) return;
      show(list, ...(reminders.length ? reminders.map((r) => this.reminder(r, error, reload))
        : [h("li", { className: "muted" }, "No reminders set.")]));
      this.recheckAt(reminders, reload);
    };
    const reload = async () => {
      try {
        render((await this.call("reminders:list", { task_id: task.id })).reminders);
      } catch (e) {
        if (current()) error.textContent = `Reminders could not be loaded: ${e.message}`;
      }
    };
    const form = h("form", { className: "reminder-form", onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const sent = at.value;
        await this.call("reminders:create", { task_id: task.id, remind_at: localIso(localTime(sent)),
          method: method.value, op_id: crypto.randomUUID() });
        if (at.value === sent) at.value = "";  // unless a next one is being typed
        await reload();
      } catch (e) {
        error.textContent = e.message;
      } finally {
        submit.disabled = false;
      }
    } },
      h("div", { className: "field" }, h("label", { for: at.id }, "Remind me at"), at),
      h("div", { className: "field" }, h("label", { for: method.id }, "Remind me by"), method),
      h("div", { className: "actions" }, submit));
    reload();
    return h("section", { className: "reminders", "aria-labelledby": "reminders-title" },
      h("h3", { id: "reminders-title" }, "Reminders"), list, error, form);
  }

  reminder(reminder, error, reload) {
    const label = METHODS.find(([value]) => value === reminder.method)?.[1] || reminder.method;
    const dismiss = reminder.status === "scheduled"
      ? h("button", { type: "button", "aria-label": `Dismiss the reminder at ${when(reminder.remind_at)}`,
          onclick: async () => {
            error.textContent = "";
            try {
              await this.call("reminders:dismiss", { reminder_id: reminder.id, op_id: crypto.randomUUID() });
              await reload();
            } catch (e) {
              error.textContent = e.message;
            }
          } }, "Dismiss")
      : null;
    return h("li", { className: "reminder", "data-reminder-id": reminder.id },
      h("time", { datetime: reminder.remind_at }, when(reminder.remind_at)),
      h("span", { className: "method" }, label),
      h("span", { className: `reminder-status ${reminder.status}` }, reminder.status),
      dismiss,
      reminder.status === "failed" && reminder.last_error
        ? h("span", { className: "reminder-error" }, `Not delivered: ${reminder.last_error}`) : null);
  }

  /** Ask again shortly after the soonest scheduled reminder's time, to show it sent. */
  recheckAt(reminders, reload) {
    clearTimeout(this.recheck);
    const times = reminders.filter((r) => r.status === "scheduled").map((r) => new Date(r.remind_at).getTime());
    if (!times.length) return;
    const ahead = Math.min(...times) - Date.now();
    const wait = ahead > 0 ? ahead + RECHECK_MS : OVERDUE_RECHECK_MS;  // due but not yet fired: less often
    this.recheck = setTimeout(reload, Math.min(wait, MAX_WAIT_MS));
  }

  async save(base, changes, error) {
    try {
      const event = await this.call("task:update", {
        task_id: base.id, base_version: base.version, changes, op_id: crypto.randomUUID() });
      this.applied(event);
      this.close();
    } catch (e) {
      if (e.code === "version_conflict" && e.details?.task) this.renderConflict(base, changes, e.details);
      else error.textContent = e.message;
    }
  }

  renderConflict(base, changes, { task: theirs, conflicting_fields: fields }) {
    const conflicting = fields.filter((f) => f in changes);
    const choices = new Map(conflicting.map((f) => [f, "mine"]));
    const rows = conflicting.map((f) => {
      const name = `choice-${f}`;
      const option = (which, label, value) => h("label", { className: "choice" },
        h("input", { type: "radio", name, value: which, checked: which === "mine",
          onchange: () => choices.set(f, which) }),
        h("span", {}, label, h("strong", {}, shown(f, value, this.members()))));
      return h("fieldset", { className: "conflict-field" },
        h("legend", {}, LABELS[f] || f),
        option("mine", "Keep mine: ", changes[f]),
        option("theirs", "Take theirs: ", theirs[f]));
    });
    const error = h("p", { className: "error", role: "alert" });
    show(this.element, h("form", { className: "conflict", onsubmit: async (event) => {
      event.preventDefault();
      const resolved = Object.fromEntries(Object.entries(changes)
        .filter(([f]) => choices.get(f) !== "theirs")
        .filter(([f, v]) => !same(v, theirs[f])));
      if (!Object.keys(resolved).length) return this.close();  // theirs is already on the board
      await this.save(theirs, resolved, error);
    } },
      h("h2", { id: "panel-title" }, "Someone changed this task while you edited it"),
      h("p", {}, "Choose, for each field you both changed, which value to keep."),
      rows, error,
      h("div", { className: "actions" },
        h("button", { type: "submit", className: "primary" }, "Save my choices"),
        h("button", { type: "button", onclick: () => this.renderForm(theirs) }, "Start over from theirs"))));
    this.element.querySelector("input")?.focus();
  }
}
