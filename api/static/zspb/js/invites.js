import { api } from "./api.js";
import { flash, notice } from "./ui.js";

const button = document.getElementById("invite-create");

if (button) {
  button.setAttribute("data-custom", "");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("POST", "/api/invites");
      flash(button.dataset.done || "");
      location.reload();
    } catch (error) {
      notice(error.message, "error");
      button.disabled = false;
    }
  });
}
