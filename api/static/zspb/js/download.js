import { api } from "./api.js";
import { notice } from "./ui.js";

const button = document.getElementById("download-button");

if (button) {
  button.setAttribute("data-custom", "");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const link = await api("POST", "/api/loader/download-link");
      location.assign(link.url);
    } catch (error) {
      notice(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}
