// The console's one script: the template editor's live preview. As the draft is edited, the form
// is posted (with its CSRF token) to the preview route, which saves the draft, renders it through
// the render endpoint and answers with the preview fragment put in place here.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-preview]");
  const target = document.getElementById("preview");
  if (!form || !target) return;
  let timer = null;
  let sequence = 0;
  const refresh = async () => {
    const mine = ++sequence;
    const response = await fetch(form.dataset.preview, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    });
    const body = await response.text();
    // An older answer arriving late must not replace a newer one.
    if (mine !== sequence) return;
    target.innerHTML = body;
    target.dataset.version = String(mine);
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { refresh().catch(() => {}); }, 300);
  });
});
