import { api } from "./api.js";
import { bindForm, flash, interpolate } from "./ui.js";

bindForm("#link-form", api, (linked) => {
  const result = document.getElementById("discord-result");
  flash(interpolate(result.dataset.linked, { name: linked.discord_username }));
  location.reload();
});
