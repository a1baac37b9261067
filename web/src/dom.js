// A small element builder: h("button", {type: "submit", onclick}, "Save").

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function show(container, ...children) {
  container.replaceChildren(...children);
}

/** Put `items` into `container` in this order, touching the page only when something
 * changed, so the focus and a click under way stay on their element. */
export function arrange(container, items) {
  const current = container.children;
  if (current.length === items.length && items.every((item, i) => current[i] === item)) return;
  const active = container.contains(document.activeElement) ? document.activeElement : null;
  container.replaceChildren(...items);
  if (active && container.contains(active)) active.focus();
}
