// Keyboard navigation for lists (inbox, search results): j / k move, Enter opens.
// Optional: every page works without it. A static file, allowed by the CSP
// (script-src 'self'); it reads only the page and sends nothing anywhere.
"use strict";
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) { return; }
  if (event.altKey || event.ctrlKey || event.metaKey) { return; }
  var links = Array.prototype.slice.call(document.querySelectorAll("#inbox .row-link"));
  if (links.length === 0) { return; }
  var at = links.indexOf(document.activeElement);
  if (event.key === "j") {
    links[Math.min(at + 1, links.length - 1)].focus();
    event.preventDefault();
  } else if (event.key === "k") {
    links[Math.max(at - 1, 0)].focus();
    event.preventDefault();
  }
});
