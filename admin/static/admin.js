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
