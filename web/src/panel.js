// The side panel that edits one task. An edit is sent with the version the panel
// opened at: the hub merges it when nobody touched the same fields since, and
// otherwise answers version_conflict; then the panel shows both values of each
// conflicting field and the person keeps theirs or takes the other one. Nothing
// is dropped without asking.

import { h, show } from "./dom.js";

const PRIORITIES = ["low", "medium", "high", "urgent"];
const LABELS = { title: "Title", description: "Description", priority: "Priority", tags: "Tags",
  assignee_id: "Assignee" };

function tagsOf(text) {
  return [...new Set(text.split(",").map((tag) => tag.trim()).filter(Boolean))];
}

function shown(field, value, names) {
  if (field === "assignee_id") return value ? names.get(value) || "a former member" : "(nobody)";
  if (field === "tags") return value.length ? value.join(", ") : "(none)";
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
    const error = h("p", { className: "error", role: "alert" });
    this.note = h("p", { className: "muted", "aria-live": "polite" });
    const field = (label, input, help) => {
      input.id = `task-field-${label.toLowerCase()}`;
      return h("div", { className: "field" }, h("label", { for: input.id }, label), input, help);
    };
    const form = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      const edited = { title: title.value.trim(), description: description.value || null,
        priority: priority.value, tags: tagsOf(tags.value), assignee_id: assignee.value || null };
      const changes = Object.fromEntries(Object.entries(edited).filter(([k, v]) => !same(v, base[k])));
      if (!Object.keys(changes).length) return this.close();
      await this.save(base, changes, error);
    } },
      h("h2", { id: "panel-title" }, "Edit task"),
      field("Title", title), field("Description", description), field("Priority", priority), field("Assignee", assignee),
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
    show(this.element, form);
    title.focus();
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
