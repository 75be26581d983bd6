// The run page's live parts. Each stage's log streams into its <pre>: a
// running stage's log grows as its Pod writes it, a finished one's
// arrives at once, and a stage that has not started yet is asked again
// until it has a log.
"use strict";
async function streamLog(pre) {
  pre.dataset.state = "loading";
  try {
    const res = await fetch(pre.dataset.src, {credentials: "same-origin", cache: "no-store"});
    pre.dataset.source = res.headers.get("X-Gyre-Log-Source") || "";
    if (!res.ok) {
      pre.textContent = await res.text();
      pre.dataset.state = "error";
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    pre.dataset.state = "streaming";
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, {stream: true});
    }
    if (pre.dataset.source === "none" && pre.dataset.unfinished === "true") {
      pre.textContent = "(no log yet)";
      pre.dataset.state = "waiting";
      setTimeout(() => { pre.textContent = ""; streamLog(pre); }, 5000);
      return;
    }
    if (pre.textContent === "") pre.textContent = pre.dataset.source === "none" ? "(no log kept)" : "(empty log)";
    pre.dataset.state = "done";
  } catch (e) {
    pre.textContent += "\n[" + e + "]";
    pre.dataset.state = "error";
  }
}
document.querySelectorAll("pre.log[data-src]").forEach(streamLog);

// While the run goes on, the DAG, the run's facts and each stage's title
// follow its status; the logs keep streaming.
async function refreshStatus() {
  const res = await fetch(location.href, {credentials: "same-origin", cache: "no-store"});
  if (!res.ok) return true;
  const doc = new DOMParser().parseFromString(await res.text(), "text/html");
  for (const id of ["dag", "run-phase", "facts"]) {
    const now = document.getElementById(id), next = doc.getElementById(id);
    if (now && next) now.replaceWith(document.importNode(next, true));
  }
  for (const h of document.querySelectorAll("section.stage h3[id]")) {
    const next = doc.getElementById(h.id);
    if (next) h.replaceWith(document.importNode(next, true));
  }
  return document.getElementById("dag").dataset.unfinished === "true";
}
function followStatus() {
  setTimeout(async () => { if (await refreshStatus().catch(() => true)) followStatus(); }, 5000);
}
if (document.getElementById("dag")?.dataset.unfinished === "true") followStatus();
