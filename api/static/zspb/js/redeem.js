import { api } from "./api.js";
import { bindForm, formatDate, interpolate, showResult } from "./ui.js";

const form = document.getElementById("redeem-form");
const result = document.getElementById("redeem-result");

bindForm(form, api, (subscription) => {
  showResult("redeem-result", interpolate(result.dataset.success, {
    product: subscription.product_name,
    date: formatDate(subscription.expires_at),
  }));
  form.reset();
  form.elements.namedItem("key").focus();
});
