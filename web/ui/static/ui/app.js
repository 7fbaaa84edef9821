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
    document.querySelectorAll("[data-refresh-url]").forEach(startRefresh);
  });
})();
