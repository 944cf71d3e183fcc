// Small glue for htmx: show failed requests instead of silently doing nothing.
document.addEventListener("htmx:responseError", function (event) {
  var toast = document.getElementById("toast");
  if (!toast) return;
  var status = event.detail.xhr.status;
  toast.textContent = status === 403
    ? "Not allowed (403). Your session or this form may have expired: reload the page."
    : status === 404 ? "Not found (404)." : "Something went wrong (" + status + "). Try again.";
  toast.hidden = false;
  clearTimeout(toast._timer);
  toast._timer = setTimeout(function () { toast.hidden = true; }, 6000);
});
document.addEventListener("htmx:sendError", function () {
  var toast = document.getElementById("toast");
  if (!toast) return;
  toast.textContent = "Cannot reach the server. Check the connection.";
  toast.hidden = false;
});

// Phones show table rows as cards labelled from data-label (admin.css): give every cell without one
// its column's header, so tables written without labels read as cards too (also in htmx swaps).
function labelTableCells(root) {
  root.querySelectorAll("table").forEach(function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    var labels = Array.prototype.map.call(head.cells, function (th) { return th.textContent.trim(); });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (!cell.hasAttribute("data-label") && labels[column]) cell.setAttribute("data-label", labels[column]);
          column += cell.colSpan || 1;
        });
      });
    });
  });
}
document.addEventListener("DOMContentLoaded", function () { labelTableCells(document); });
document.addEventListener("htmx:load", function (event) { labelTableCells(event.detail.elt.parentElement || document); });

// The phone menu (a <details> in base.html) closes on Escape, giving focus back to "Menu", and on a
// tap outside it, like any menu.
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  var menu = document.querySelector("details.nav-menu[open]");
  if (!menu) return;
  menu.open = false;
  menu.querySelector("summary").focus();
});
document.addEventListener("click", function (event) {
  var menu = document.querySelector("details.nav-menu[open]");
  if (menu && !menu.contains(event.target)) menu.open = false;
});
