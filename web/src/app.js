// The page: who is logged in decides the view; the hash names the board.

import { Api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import { Bell } from "./bell.js";
import { Live } from "./live.js";

const api = new Api();
const live = new Live(api);
new Bell(live, api, document.getElementById("bell"));
let board = null;  // the board module, once a board was opened
let asks = 0;  // views asked for so far: one that loads late is shown only if still wanted
const view = document.getElementById("view");
let config = { dev: false, demo_users: [] };

function say(error) {
  return error instanceof ApiError ? error.message : "Something went wrong. Try again.";
}

function field(label, input) {
  const id = `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { className: "field" }, h("label", { for: id }, label), input);
}

function authView() {
  let mode = "login";
  const error = h("p", { className: "error", role: "alert" });
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const name = h("input", { type: "text", name: "name", autocomplete: "name", maxlength: 100 });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, minlength: 1 });
  const nameField = field("Name", name);
  const title = h("h1", {}, "Log in");
  const submit = h("button", { type: "submit", className: "primary" }, "Log in");
  const toggle = h("button", { type: "button", className: "link" }, "New here? Sign up");
  const setMode = (next) => {
    mode = next;
    const signup = mode === "signup";
    title.textContent = signup ? "Sign up" : "Log in";
    submit.textContent = signup ? "Create account" : "Log in";
    toggle.textContent = signup ? "Have an account? Log in" : "New here? Sign up";
    nameField.hidden = !signup;
    name.required = signup;
    password.autocomplete = signup ? "new-password" : "current-password";
    error.textContent = "";
  };
  toggle.addEventListener("click", () => setMode(mode === "login" ? "signup" : "login"));
  const form = h("form", { className: "card auth", novalidate: false, onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      if (mode === "signup") await api.register(email.value.trim(), name.value.trim(), password.value);
      else await api.login(email.value.trim(), password.value);
      location.hash = "#/boards";
      render();
    } catch (e) {
      error.textContent = say(e);
    } finally {
      submit.disabled = false;
    }
  } }, title, field("Email", email), nameField, field("Password", password), error, submit, toggle);
  setMode("login");
  const demo = config.dev && config.demo_users.length
    ? h("section", { className: "card demo", "aria-labelledby": "demo-title" },
        h("h2", { id: "demo-title" }, "Demo users (development only)"),
        h("ul", {}, config.demo_users.map((user) => h("li", {},
          h("button", { type: "button", className: "link", onclick: () => {
            setMode("login");
            email.value = user.email;
            password.value = user.password;
            form.requestSubmit();
          } }, `Log in as ${user.name}`), ` (${user.email})`))))
    : null;
  show(view, h("div", { className: "auth-page" }, form, demo));
  email.focus();
}

async function boardsView() {
  const list = h("ul", { className: "boards", "aria-label": "My boards" }, h("li", { className: "muted" }, "Loading boards…"));
  const error = h("p", { className: "error", role: "alert" });
  const nameInput = h("input", { type: "text", name: "board-name", required: true, maxlength: 100, placeholder: "e.g. Launch plan" });
  const create = h("form", { className: "inline", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const board = await api.request("POST", "/api/boards", { name: nameInput.value.trim() });
      nameInput.value = "";
      location.hash = `#/boards/${board.id}`;
    } catch (e) {
      error.textContent = say(e);
    }
  } }, field("New board", nameInput), h("button", { type: "submit", className: "primary" }, "Create board"));
  show(view, h("section", { className: "boards-page" }, h("h1", {}, "My boards"), create, error, list));
  try {
    const { boards } = await api.request("GET", "/api/boards");
    show(list, ...(boards.length
      ? boards.map((board) => h("li", {}, h("a", { href: `#/boards/${board.id}` }, board.name),
          h("span", { className: "muted" }, ` · ${board.role}`)))
      : [h("li", { className: "muted" }, "No boards yet. Create the first one above.")]));
  } catch (e) {
    show(list, h("li", { className: "error" }, say(e)));
  }
}

async function boardView(boardId, asked) {
  const module = await import("./board.js");
  if (asked !== asks) return;  // the person went elsewhere while it loaded
  board = module;
  await board.openBoard(view, api, live, boardId);
}

function renderAccount() {
  const account = document.getElementById("account");
  account.hidden = !api.user;
  document.getElementById("account-name").textContent = api.user ? api.user.name : "";
}

async function render() {
  const asked = ++asks;
  renderAccount();
  const match = api.user && location.hash.match(/^#\/boards\/([0-9a-f-]{36})$/);
  if (!match) board?.closeBoard();
  if (!api.user) return authView();
  if (match) return boardView(match[1], asked);
  return boardsView();
}

document.getElementById("logout").addEventListener("click", async () => {
  board?.closeBoard();  // first, so its last writes go out as this user
  await api.logout().catch(() => {});
  location.hash = "";
  render();
});
window.addEventListener("hashchange", () => render());
api.onToken((token) => { if (!token) render(); });

async function start() {
  config = await api.request("GET", "/api/client-config").catch(() => config);
  await api.resume().catch(() => false);
  render();
}

start();
