// Who belongs to the board, and (for its owners) inviting someone by email with a
// role or removing them. Membership goes through the REST API; the board page
// asks for the list again after a change, so names and pickers follow.

import { ApiError } from "./api.js";
import { h, show } from "./dom.js";

const ROLES = [
  ["editor", "Editor: can edit tasks"],
  ["viewer", "Viewer: can only look"],
  ["owner", "Owner: can also manage members"],
];

export class MembersBox {
  /** `changed()` is called after a member was added or removed. */
  constructor(api, boardId, changed) {
    this.api = api;
    this.boardId = boardId;
    this.changed = changed;
    this.summary = h("summary", {}, "Members");
    this.list = h("ul", { className: "member-list", "aria-label": "Board members" });
    this.status = h("p", { className: "muted", role: "status" });
    this.form = this.inviteForm();
    this.element = h("details", { className: "members" }, this.summary,
      h("div", { className: "members-body" }, this.list, this.form, this.status));
  }

  /** `members`: [{user_id, email, name, role}] from board:members. */
  update(members) {
    const me = members.find((m) => m.user_id === this.api.user?.id);
    const owner = me?.role === "owner";
    this.summary.textContent = `Members (${members.length})`;
    this.form.hidden = !owner;
    show(this.list, ...members.map((m) => h("li", {},
      h("span", { className: "member-name" }, m.user_id === me?.user_id ? `${m.name} (you)` : m.name),
      h("span", { className: "muted" }, ` · ${m.role}`),
      owner && m.user_id !== me.user_id
        ? h("button", { type: "button", className: "link", "aria-label": `Remove ${m.name} from the board`,
            onclick: () => this.remove(m) }, "Remove")
        : null)));
  }

  inviteForm() {
    const email = h("input", { type: "email", required: true, id: "invite-email", autocomplete: "off" });
    const role = h("select", { id: "invite-role" }, ROLES.map(([value, label]) => h("option", { value }, label)));
    const error = h("p", { className: "error", role: "alert" });
    const submit = h("button", { type: "submit", className: "primary" }, "Invite");
    return h("form", { className: "invite", hidden: true, onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const added = await this.api.request("POST", `/api/boards/${this.boardId}/members`,
          { email: email.value.trim(), role: role.value });
        this.status.textContent = `${email.value.trim()} is now ${added.role === "owner" ? "an" : "a"} ${added.role} of this board.`;
        email.value = "";
        await this.changed();
      } catch (e) {
        error.textContent = e instanceof ApiError ? e.message : "The invitation did not go through. Try again.";
      } finally {
        submit.disabled = false;
      }
    } },
      h("div", { className: "field" }, h("label", { for: email.id }, "Invite by email"), email),
      h("div", { className: "field" }, h("label", { for: role.id }, "Role"), role),
      error, submit);
  }

  async remove(member) {
    try {
      await this.api.request("DELETE", `/api/boards/${this.boardId}/members/${member.user_id}`);
      this.status.textContent = `${member.name} was removed from this board.`;
      await this.changed();
    } catch (e) {
      this.status.textContent = e instanceof ApiError ? e.message : "The member was not removed. Try again.";
    }
  }
}
