// Almanac's web pages: the import page's preview and live progress, drag and drop, and the
// live progress of an import's page. Everything works without this script, in fewer steps.
"use strict";

const csrf = document.querySelector("main").dataset.csrf;
const number = (n) => Number(n || 0).toLocaleString("en");

async function post(url, body) {
  const reply = await fetch(url, {method: "POST", body, headers: {"X-CSRF-Token": csrf, Accept: "application/json"}});
  const data = await reply.json().catch(() => ({message: `The server answered ${reply.status}.`}));
  if (!reply.ok) throw new Error(data.message || `The server answered ${reply.status}.`);
  return data;
}

function fillRows(tbody, errors) {
  tbody.replaceChildren(...errors.map((error) => {
    const row = document.createElement("tr");
    for (const value of [error.line ?? "—", error.error]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  }));
}

async function follow(statusUrl, bar, text) {
  for (;;) {
    const reply = await fetch(statusUrl, {headers: {Accept: "application/json"}});
    const state = await reply.json();
    bar.value = state.percent;
    // the bar covers reading and writing; the text says the step it is at, in its own numbers
    text.textContent = state.written
      ? `${Math.floor((100 * state.written) / Math.max(state.total, 1))}% written — ${number(state.written)} of ${number(state.total)} entries`
      : `Reading the file — ${state.percent}%`;
    if (state.finished) return state;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

function importPage(form) {
  const file = form.elements.file, drop = document.getElementById("drop");
  const previewButton = document.getElementById("preview-button");
  const preview = document.getElementById("preview"), summary = document.getElementById("preview-summary");
  const errorsTable = document.getElementById("preview-errors"), skipLabel = document.getElementById("skip-label");
  const progress = document.getElementById("progress");
  previewButton.hidden = false;
  const showName = () => { document.getElementById("filename").textContent = file.files[0]?.name || ""; };
  file.addEventListener("change", () => { showName(); preview.hidden = true; });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    file.files = event.dataTransfer.files;
    showName();
  });
  const say = (message, kind) => {
    let note = document.getElementById("note");
    if (!note) {
      note = document.createElement("p");
      note.id = "note";
      note.setAttribute("role", "alert");
      form.before(note);
    }
    note.className = kind;
    note.textContent = message;
  };
  previewButton.addEventListener("click", async () => {
    if (!file.files.length) { file.reportValidity(); return; }
    previewButton.disabled = true;
    summary.textContent = "Reading the file…";
    preview.hidden = false;
    try {
      const result = await post(`${form.action.split("?")[0]}/preview`, new FormData(form));
      const made = result.calendars_created.length ? ` It would make the calendar(s) ${result.calendars_created.join(", ")}.` : "";
      summary.textContent = `${result.type ? result.type.toUpperCase() + " file: " : ""}` +
        `${number(result.entries_created)} new, ${number(result.entries_updated)} updated, ` +
        `${number(result.entries_unchanged)} unchanged, ${number(result.entries_discarded)} outside the dates.${made}`;
      fillRows(errorsTable.tBodies[0], result.line_errors);
      errorsTable.hidden = skipLabel.hidden = !result.line_errors.length;
      if (result.line_errors.length) {
        const listed = result.line_error_count > result.line_errors.length ? ` (the first ${number(result.line_errors.length)} are listed)` : "";
        summary.textContent += ` ${number(result.line_error_count)} line error(s)${listed}: as it is, the file would import nothing.`;
      }
    } catch (error) {
      summary.textContent = error.message;
    } finally {
      previewButton.disabled = false;
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("import-button");
    button.disabled = previewButton.disabled = true;
    progress.hidden = false;
    try {
      const job = await post(form.action, new FormData(form));
      const state = await follow(`${job.url}/status`, document.getElementById("bar"), document.getElementById("progress-text"));
      window.location.assign(job.url);
      return state;
    } catch (error) {
      progress.hidden = true;
      say(error.message, "error");
      button.disabled = previewButton.disabled = false;
    }
  });
}

const form = document.getElementById("import");
if (form) importPage(form);
const live = document.getElementById("live");
if (live) {
  follow(live.dataset.statusUrl, document.getElementById("bar"), document.getElementById("progress-text"))
    .then(() => window.location.reload());
}

// Copy buttons beside an address (the address itself can always be selected and copied).
for (const button of document.querySelectorAll("[data-copy]")) {
  if (!navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent);
    button.textContent = "Copied";
  });
}

// The calendar views: the browser's time zone, until the account names one; the calendar
// checkboxes apply at once.
if (!document.cookie.includes("almanac_tz=")) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) {
    document.cookie = `almanac_tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; samesite=lax`;
    if (document.querySelector(".calendar-body")) location.reload();
  }
}
for (const box of document.querySelectorAll("form.shown input[type=checkbox]")) {
  box.addEventListener("change", () => box.form.submit());
  box.form.querySelector("button[type=submit]").hidden = true;
}
// the week's grid opens at 07:00 (it scrolls, the hours before are there)
const weekGrid = document.querySelector(".week-grid");
if (weekGrid) weekGrid.scrollTop = weekGrid.querySelector(".hours li:nth-child(8)").offsetTop - weekGrid.offsetTop;
