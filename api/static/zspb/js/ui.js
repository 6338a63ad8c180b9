// Small helpers shared by the page modules: translated strings, notices, dates, forms.

export function t(key) {
  const holder = document.getElementById("i18n");
  const value = holder ? holder.getAttribute(`data-${key}`) : null;
  return value === null ? key : value;
}

export function interpolate(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => (name in values ? values[name] : ""));
}

// Requests this page has under way. A "sessions ended" event caused by this page's own
// request (a password change) must wait for its answer, which carries the re-keyed session.
let busy = 0;
let idleWaiters = [];

export async function tracked(promise) {
  busy += 1;
  try {
    return await promise;
  } finally {
    busy -= 1;
    if (busy === 0) {
      for (const resolve of idleWaiters) resolve();
      idleWaiters = [];
    }
  }
}

export function idle() {
  return busy === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
}

const FLASH_KEY = "zspb:flash";

export function notice(message, kind = "info") {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = false;
}

// A message that survives the reload that follows an action.
export function flash(message, kind = "success") {
  try {
    sessionStorage.setItem(FLASH_KEY, JSON.stringify({ message, kind }));
  } catch (error) {
    // Storage may be disabled; the reload still shows the new state.
  }
}

export function showFlash() {
  let item = null;
  try {
    item = JSON.parse(sessionStorage.getItem(FLASH_KEY) || "null");
    sessionStorage.removeItem(FLASH_KEY);
  } catch (error) {
    item = null;
  }
  if (item && item.message) notice(item.message, item.kind);
}

export function formatDate(iso, dateOnly = false) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const options = dateOnly ? { dateStyle: "long" } : { dateStyle: "medium", timeStyle: "short" };
  try {
    return new Intl.DateTimeFormat(document.documentElement.lang || undefined, options)
      .format(date);
  } catch (error) {
    return date.toLocaleString();
  }
}

export function localizeTimes(root = document) {
  for (const node of root.querySelectorAll("time.localtime[datetime]")) {
    node.textContent = formatDate(node.getAttribute("datetime"),
      node.dataset.format === "date");
  }
}

function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-errors.js")) node.remove();
  for (const node of form.querySelectorAll(".form-error.js")) node.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const described = (input.getAttribute("aria-describedby") || "").split(" ")
      .filter((id) => id && !id.endsWith("_jserror"));
    if (described.length) input.setAttribute("aria-describedby", described.join(" "));
    else input.removeAttribute("aria-describedby");
    input.closest(".field")?.classList.remove("has-error");
  }
}

function fieldError(form, name, message) {
  const input = form.elements.namedItem(name);
  if (!(input instanceof HTMLElement)) return false;
  const id = `${input.id || name}_jserror`;
  const list = document.createElement("ul");
  list.className = "field-errors js";
  list.id = id;
  const item = document.createElement("li");
  item.textContent = message;
  list.append(item);
  input.insertAdjacentElement("afterend", list);
  input.setAttribute("aria-invalid", "true");
  const described = input.getAttribute("aria-describedby");
  input.setAttribute("aria-describedby", described ? `${described} ${id}` : id);
  input.closest(".field")?.classList.add("has-error");
  return true;
}

export function formError(form, message) {
  const box = document.createElement("div");
  box.className = "alert alert-danger form-error js";
  box.setAttribute("role", "alert");
  box.textContent = message;
  form.prepend(box);
}

// Shows an API refusal next to the fields it names, or above the form.
export function showErrors(form, error) {
  clearErrors(form);
  const fields = (error.details && error.details.fields) || {};
  let placed = false;
  for (const [name, problem] of Object.entries(fields)) {
    const text = Array.isArray(problem) ? problem.join(" ")
      : ["invalid", "taken", "exclusive"].includes(problem) ? error.message : String(problem);
    placed = fieldError(form, name, text) || placed;
  }
  for (const item of (error.details && error.details.errors) || []) {
    const name = (item.loc || [])[item.loc.length - 1];
    if (name && fieldError(form, name, error.message)) placed = true;
  }
  if (!placed) formError(form, error.message);
  const first = form.querySelector("[aria-invalid=true]");
  if (first instanceof HTMLElement) first.focus();
}

export function formValues(form) {
  const values = {};
  for (const element of form.elements) {
    if (!(element instanceof HTMLInputElement || element instanceof HTMLSelectElement)) continue;
    if (!element.name || element.hasAttribute("data-skip") || element.hidden) continue;
    values[element.name] = element.value;
  }
  return values;
}

// Submit forms matching `selector` to their data-api ("METHOD /url") through `call`; `done`
// gets the answer. Bound on the document, so a form swapped in by a live refresh still works.
export function bindForm(selector, call, done, check) {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches(selector)) return;
    event.preventDefault();
    clearErrors(form);
    if (check && !check(form)) return;
    const [method, url] = form.dataset.api.split(" ");
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      done(await tracked(call(method, url, formValues(form))), form);
    } catch (error) {
      showErrors(form, error);
    } finally {
      if (button) button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

export function showResult(id, message, kind = "success") {
  const box = document.getElementById(id);
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
}
