// Live countdowns in the staff admin (the key list and a key's page): each
// <span class="staff-countdown" data-expires="ISO" data-now="ISO" data-units="d,h,m,s"
// data-expired="expired"> counts down to data-expires on the server's clock (data-now is the
// server's time when the page was made), so a wrong clock in the browser changes nothing.
(function () {
  "use strict";

  var offset = null; // server time minus browser time, from the first data-now on the page

  function pad(value) {
    return String(value).padStart(2, "0");
  }

  function render() {
    var nodes = document.querySelectorAll(".staff-countdown[data-expires]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (offset === null) {
        var server = Date.parse(node.dataset.now);
        offset = Number.isNaN(server) ? 0 : server - Date.now();
      }
      var left = Math.floor((Date.parse(node.dataset.expires) - (Date.now() + offset)) / 1000);
      if (Number.isNaN(left)) continue;
      if (left <= 0) {
        node.textContent = node.dataset.expired || "-";
        continue;
      }
      var units = (node.dataset.units || "d,h,m,s").split(",");
      var days = Math.floor(left / 86400);
      var hours = Math.floor((left % 86400) / 3600);
      var minutes = Math.floor((left % 3600) / 60);
      node.textContent = days + units[0] + " " + pad(hours) + units[1] + " " + pad(minutes) +
        units[2] + " " + pad(left % 60) + units[3];
    }
  }

  function start() {
    render();
    window.setInterval(render, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
