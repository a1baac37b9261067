// The board's filters: a search box and assignee, priority and tag pickers. They
// only hide cards on this screen; live events keep arriving for every card.

import { h } from "./dom.js";

const ALL = "";
const NOBODY = "nobody";

function options(select, entries) {
  const keep = select.value;
  select.replaceChildren(...entries.map(([value, label]) => h("option", { value }, label)));
  select.value = entries.some(([value]) => value === keep) ? keep : ALL;
}

export class TaskFilters {
  constructor(onChange) {
    const picker = (label) => h("select", { "aria-label": label, onchange: onChange });
    this.search = h("input", { type: "search", placeholder: "Search tasks", "aria-label": "Search tasks",
      oninput: onChange });
    this.assignee = picker("Filter by assignee");
    this.priority = picker("Filter by priority");
    this.tag = picker("Filter by tag");
    options(this.priority, [[ALL, "Any priority"], ...["urgent", "high", "medium", "low"].map((p) => [p, p])]);
    this.element = h("div", { className: "filters", role: "search", "aria-label": "Filter tasks" },
      this.search, this.assignee, this.priority, this.tag,
      h("button", { type: "button", className: "link", onclick: () => {
        this.search.value = "";
        for (const select of [this.assignee, this.priority, this.tag]) select.value = ALL;
        onChange();
      } }, "Clear filters"));
  }

  /** The pickers offer what the board has: its members and the tags in use. */
  offer(tasks, members) {
    const tags = new Set();
    for (const task of tasks) for (const tag of task.tags) tags.add(tag);
    options(this.tag, [[ALL, "Any tag"], ...[...tags].sort().map((tag) => [tag, tag])]);
    options(this.assignee, [[ALL, "Anyone"], [NOBODY, "Unassigned"],
      ...[...members].map(([id, name]) => [id, name])]);
  }

  matches(task) {
    const words = this.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const text = [task.title, task.description || "", ...task.tags].join(" ").toLowerCase();
    if (!words.every((word) => text.includes(word))) return false;
    if (this.priority.value && task.priority !== this.priority.value) return false;
    if (this.tag.value && !task.tags.includes(this.tag.value)) return false;
    if (this.assignee.value === NOBODY) return task.assignee_id === null;
    if (this.assignee.value && task.assignee_id !== this.assignee.value) return false;
    return true;
  }
}
