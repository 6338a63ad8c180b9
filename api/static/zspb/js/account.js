import { api } from "./api.js";
import { bindForm, flash, formError } from "./ui.js";

bindForm("#password-form", api, (_, form) => {
  flash(form.dataset.done);
  location.reload();
}, (form) => {
  const first = form.elements.namedItem("new_password").value;
  const second = form.elements.namedItem("new_password2").value;
  if (first !== second) {
    formError(form, form.dataset.mismatch);
    return false;
  }
  return true;
});
