// rediq dashboard: confirmations and bulk selection in plain JavaScript (no build step).
"use strict";
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!box.matches("input[data-select-all]")) return;
  for (const other of box.form.querySelectorAll('input[name="task_id"]')) other.checked = box.checked;
});
