// cohort dashboard: the little the pages do in the browser. Pages whose data changes while
// work runs (<body data-refresh="SECONDS">) reload themselves, unless the user has paused it.
(function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!(seconds > 0)) return;
  var paused = window.localStorage && localStorage.getItem("cohort-refresh") === "off";
  var toggle = document.getElementById("refresh");
  if (toggle) {
    toggle.textContent = paused ? "auto-refresh: off" : "auto-refresh: every " + seconds + " s";
    toggle.addEventListener("click", function (e) {
      e.preventDefault();
      localStorage.setItem("cohort-refresh", paused ? "on" : "off");
      window.location.reload();
    });
  }
  if (!paused) window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
})();
