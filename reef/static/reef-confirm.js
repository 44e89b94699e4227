// Forms marked data-confirm="question" ask before they submit (deleting a user, removing a
// member): a file, not an inline handler, so a strict CSP (script-src 'self') allows it.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
