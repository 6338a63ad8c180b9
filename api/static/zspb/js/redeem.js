import { api } from "./api.js";
import { bindForm, formatDate, interpolate, showResult } from "./ui.js";

bindForm("#redeem-form", api, (subscription, form) => {
  const result = document.getElementById("redeem-result");
  showResult("redeem-result", interpolate(result.dataset.success, {
    product: subscription.product_name,
    date: formatDate(subscription.expires_at),
  }));
  form.reset();
  form.elements.namedItem("key").focus();
});
