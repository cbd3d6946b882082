// rediq dashboard: confirmations and bulk selection in plain JavaScript (no build step).
"use strict";
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
// Pages rendered with data-refresh="N" reload their content every N seconds while visible.
const live = document.querySelector("main[data-refresh]");
if (live) {
  window.setInterval(async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector("main");
      if (fresh) live.replaceChildren(...fresh.childNodes);
    } catch (error) {
      // The server is restarting or unreachable: keep the last content, try again later.
    }
  }, Number(live.dataset.refresh) * 1000);
}
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!box.matches("input[data-select-all]")) return;
  for (const other of box.form.querySelectorAll('input[name="task_id"]')) other.checked = box.checked;
});
