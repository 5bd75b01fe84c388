// Shared pieces of the screens: toasts, field errors, loading / empty / error states.

import { ApiError, type ErrorDetail } from "./api";
import { type Child, fill, h } from "./dom";
import { t } from "./i18n";

let toasts: HTMLElement | null = null;

/** A short message at the corner; an error shows its server message. */
export function toast(what: unknown) {
  toasts ??= document.body.appendChild(h("div", { class: "toasts", "data-testid": "toasts" }));
  const error = what instanceof Error;
  const text = what instanceof ApiError ? `${what.message} (${what.code})` : error ? (what as Error).message : String(what);
  const el = h("div", { class: error ? "toast error" : "toast", role: error ? "alert" : "status" }, text);
  toasts.appendChild(el);
  window.setTimeout(() => el.remove(), error ? 8000 : 3500);
}

/**
 * Shows the server's refusals at their fields: each detail's `at` names a field (maybe
 * with a prefix such as `resident.`); a detail no field matches is shown at the form's top.
 */
export function fieldErrors(form: HTMLElement, details: ErrorDetail[]) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
  form.querySelector(".form-error")?.remove();
  const unplaced: ErrorDetail[] = [];
  for (const d of details) {
    const name = d.at.split(/[.\s,]/).filter(Boolean).pop() ?? d.at;
    const label = form.querySelector<HTMLElement>(`[data-field="${CSS.escape(d.at)}"]`) ?? form.querySelector<HTMLElement>(`[data-field="${CSS.escape(name)}"]`);
    if (label) {
      label.classList.add("invalid");
      const slot = label.querySelector(".field-error");
      if (slot) slot.textContent = d.reason;
    } else {
      unplaced.push(d);
    }
  }
  if (unplaced.length) {
    form.prepend(h("div", { class: "form-error", role: "alert" }, unplaced.map((d) => h("div", null, `${d.at}: ${d.reason}`))));
  }
}

/**
 * A form's submit handler: clears the last refusals, disables `submit` while `send` runs,
 * and shows the server's refusals at their fields (an `invalid_field` without details at
 * `field`, when given); other failures become a toast.
 */
export function submitting(submit: HTMLButtonElement, send: () => Promise<void>, field?: string) {
  return async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    fieldErrors(form, []);
    submit.disabled = true;
    try {
      await send();
    } catch (err) {
      if (err instanceof ApiError && err.details.length) fieldErrors(form, err.details);
      else if (field && err instanceof ApiError && err.code === "invalid_field") fieldErrors(form, [{ at: field, reason: err.message }]);
      else toast(err);
    } finally {
      submit.disabled = false;
    }
  };
}

/** Runs `load` into `el` with loading, empty and error states. */
export async function loadInto<T>(el: HTMLElement, load: () => Promise<T>, render: (value: T) => Child) {
  fill(el, h("div", { class: "loading" }, t("state.loading")));
  try {
    const value = await load();
    const out = render(value);
    if (out === null || out === undefined || (Array.isArray(out) && out.length === 0)) fill(el, h("div", { class: "empty" }, t("state.empty")));
    else fill(el, out);
  } catch (e) {
    fill(
      el,
      h(
        "div",
        { class: "error-state", role: "alert" },
        h("strong", null, t("state.error")),
        h("div", null, e instanceof Error ? e.message : String(e)),
        h("button", { class: "small", onclick: () => void loadInto(el, load, render) }, t("state.retry")),
      ),
    );
  }
}
