// Small progressive enhancement for the server-rendered UI (every page works without it):
// local times, live fragments, confirmations, the executor fields swap, key/value rows.
(function () {
  "use strict";

  // <time datetime="ISO" data-local>: shown in the viewer's zone; the title keeps the job's zone.
  const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "long" });
  function localizeTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.textContent = fmt.format(d);
    });
  }

  // [data-refresh-url]: reload the element's HTML every data-refresh-every ms (default 2000)
  // while the page is visible; the fragment may carry data-refresh-done to stop refreshing.
  function startRefresh(el) {
    const every = parseInt(el.dataset.refreshEvery || "2000", 10);
    let last = null;
    async function tick() {
      if (el.dataset.refreshDone !== undefined) return;
      if (!document.hidden) {
        try {
          const r = await fetch(el.dataset.refreshUrl, { headers: { "X-Requested-With": "fetch" } });
          if (r.ok) {
            const html = await r.text();
            if (html !== last) {
              const open = Array.from(el.querySelectorAll("details[open]")).map((d) => d.id);
              el.innerHTML = html;
              last = html;
              open.forEach(function (id) {
                const d = id && document.getElementById(id);
                if (d) d.open = true;
              });
              enhance(el);
            }
          }
        } catch (e) {
          /* the next tick retries */
        }
      }
      setTimeout(tick, every);
    }
    setTimeout(tick, every);
  }

  // details[data-load-url]: the full output, fetched the first time the row is opened.
  function lazyDetails(root) {
    root.querySelectorAll("[data-load-full]").forEach(function (btn) {
      btn.addEventListener("click", async function (ev) {
        ev.preventDefault();
        const target = document.getElementById(btn.dataset.target);
        const r = await fetch(btn.dataset.loadFull, { headers: { "X-Requested-With": "fetch" } });
        if (r.ok && target) {
          target.textContent = await r.text();
          btn.remove();
        }
      });
    });
  }

  // form[data-confirm]: ask before a destructive or bulk action.
  function confirms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      // Also run on refreshed fragments (enhance): bind each form once.
      if (form.dataset.confirmBound !== undefined) return;
      form.dataset.confirmBound = "";
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
  }

  // select[data-fields-url]: swap in the chosen executor's config fields.
  function executorSwap(root) {
    root.querySelectorAll("select[data-fields-url]").forEach(function (sel) {
      sel.addEventListener("change", async function () {
        const target = document.getElementById(sel.dataset.fieldsTarget);
        const url = sel.dataset.fieldsUrl + "?executor=" + encodeURIComponent(sel.value);
        const r = await fetch(url, { headers: { "X-Requested-With": "fetch" } });
        if (r.ok && target) {
          target.innerHTML = await r.text();
          enhance(target);
        }
      });
    });
  }

  // [data-add-row="<template id>"]: append a copy of a <template> row (tags, metadata);
  // [data-remove-row]: remove the row it sits in.
  function rows(root) {
    root.querySelectorAll("[data-add-row]").forEach(function (btn) {
      btn.addEventListener("click", function (ev) {
        ev.preventDefault();
        const tpl = document.getElementById(btn.dataset.addRow);
        const list = document.getElementById(btn.dataset.rowsTarget);
        if (tpl && list) {
          list.appendChild(tpl.content.cloneNode(true));
          enhance(list.lastElementChild || list);
        }
      });
    });
    root.addEventListener("click", function (ev) {
      const btn = ev.target.closest && ev.target.closest("[data-remove-row]");
      if (btn) {
        ev.preventDefault();
        btn.closest(".kv-row").remove();
      }
    });
  }

  // Select-all checkbox for bulk actions.
  function selectAll(root) {
    root.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll(box.dataset.selectAll).forEach(function (b) {
          b.checked = box.checked;
        });
      });
    });
  }

  // #schedule-preview[data-preview-url]: the job form's next fire times, asked of
  // POST /v1/schedule/preview (the session's CSRF token) a moment after the schedule, zone,
  // jitter or calendars change. Built with textContent only: nothing typed becomes markup.
  function schedulePreview() {
    const box = document.getElementById("schedule-preview");
    const form = document.getElementById("job-form");
    if (!box || !form) return;
    const body = box.querySelector("[data-preview-body]");
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
    const watched = ["schedule", "timezone", "jitter", "name", "exclude_calendars", "only_calendars"];
    let timer = null;
    let asked = 0;
    function value(name) {
      const el = form.elements.namedItem(name);
      return el && "value" in el ? el.value.trim() : "";
    }
    function chosen(name) {
      const el = form.elements.namedItem(name);
      if (!el || !el.options) return [];
      return Array.from(el.options).filter((o) => o.selected).map((o) => o.value);
    }
    function el(tag, text, cls) {
      const node = document.createElement(tag);
      if (text) node.textContent = text;
      if (cls) node.className = cls;
      return node;
    }
    function show(answer) {
      body.replaceChildren();
      const head = [answer.description, answer.timezone].filter(Boolean).join(" · ");
      if (head) body.appendChild(el("p", head, "help"));
      if (answer.note) body.appendChild(el("p", answer.note));
      if (!answer.fires.length) return;
      const table = el("table");
      const tr = el("tr");
      ["Local", "UTC", "Notes"].forEach((h) => tr.appendChild(el("th", h)));
      table.appendChild(el("thead")).appendChild(tr);
      const rows = table.appendChild(el("tbody"));
      answer.fires.forEach(function (f) {
        const row = el("tr");
        row.appendChild(el("td", f.local_text || f.local));
        row.appendChild(el("td", f.utc));
        const notes = [];
        if (f.dst_note) notes.push(f.dst_note);
        f.skipped.forEach((s) => notes.push("skipped " + (s.local || s.utc) + ": " + s.reason));
        if (f.skipped_more) notes.push("and more skipped times");
        if (f.jitter) notes.push("starts +" + f.jitter.toFixed(1) + "s (jitter)");
        row.appendChild(el("td", notes.join("; ")));
        if (f.dst || f.skipped.length) row.className = "warn";
        rows.appendChild(row);
      });
      body.appendChild(table);
    }
    async function ask() {
      const schedule = value("schedule");
      if (!schedule) return;
      const mine = ++asked;
      const payload = {
        schedule: schedule,
        timezone: value("timezone"),
        name: value("name"),
        exclude_calendars: chosen("exclude_calendars"),
        only_calendars: chosen("only_calendars"),
        count: 10,
      };
      const jitter = value("jitter");
      if (jitter) payload.jitter = jitter;
      try {
        const r = await fetch(box.dataset.previewUrl, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRFToken": csrf ? csrf.value : "",
          },
          credentials: "same-origin",
          body: JSON.stringify(payload),
        });
        if (mine !== asked) return; // a newer question is on its way
        const answer = await r.json();
        if (r.ok) show(answer);
        else body.replaceChildren(el("p", answer.error || "no preview", "error"));
      } catch (e) {
        /* offline or a server restart: the next change asks again */
      }
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    }
    watched.forEach(function (name) {
      const field = form.elements.namedItem(name);
      if (field && field.addEventListener) {
        field.addEventListener("input", later);
        field.addEventListener("change", later);
      }
    });
    ask();
  }

  function enhance(root) {
    localizeTimes(root);
    lazyDetails(root);
    confirms(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    executorSwap(document);
    rows(document);
    selectAll(document);
    schedulePreview();
    document.querySelectorAll("[data-refresh-url]").forEach(startRefresh);
  });
})();
