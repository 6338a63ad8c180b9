import { api } from "./api.js";
import { bindForm, flash, interpolate } from "./ui.js";

const form = document.getElementById("link-form");
const result = document.getElementById("discord-result");

if (form) {
  bindForm(form, api, (linked) => {
    flash(interpolate(result.dataset.linked, { name: linked.discord_username }));
    location.reload();
  });
}
