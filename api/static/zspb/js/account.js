import { api } from "./api.js";
import { bindForm, flash, formError } from "./ui.js";

const form = document.getElementById("password-form");

bindForm(form, api, () => {
  flash(form.dataset.done);
  location.reload();
}, (checked) => {
  const first = checked.elements.namedItem("new_password").value;
  const second = checked.elements.namedItem("new_password2").value;
  if (first !== second) {
    formError(checked, checked.dataset.mismatch);
    return false;
  }
  return true;
});
