/* The Devices page: add, rename, move channels onto, remove a device through
 * /api/v1/devices (same origin, the page's CSRF token as X-CSRF-Token). */
"use strict";
(() => {
  const token = () => document.querySelector('meta[name="csrf-token"]').content;
  const result = () => document.getElementById("devices-result");
  const numbers = (text) => (text || "").split(",").map((s) => s.trim()).filter(Boolean);

  async function call(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": token() } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(url, init);
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(data.detail || data.error || `HTTP ${answer.status}`);
    return data;
  }

  async function run(work) {
    try {
      await work();
      window.location.reload();
    } catch (err) {
      result().textContent = String(err.message || err);
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-device-form]");
    if (!form) return;
    event.preventDefault();
    const data = new FormData(form);
    const kind = form.dataset.deviceForm;
    if (kind === "rename") {
      run(() => call("PATCH", `/api/v1/devices/${form.dataset.device}`, { name: data.get("name") }));
    } else if (kind === "add") {
      run(async () => {
        const rule = data.get("rule");
        const added = await call("POST", "/api/v1/devices", {
          name: data.get("name") || null, rule, match: data.get("match") || null,
        });
        const picked = numbers(data.get("channels"));
        if (picked.length) {
          await call("POST", `/api/v1/devices/${added.number}/channels`, { guide_numbers: picked });
        }
      });
    } else if (kind === "assign") {
      run(() => call("POST", `/api/v1/devices/${data.get("number")}/channels`,
        { guide_numbers: numbers(data.get("channels")) }));
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-device-remove]");
    if (!button) return;
    const number = button.dataset.deviceRemove;
    if (!window.confirm(`Remove device ${number}? Remove it in Plex too.`)) return;
    run(() => call("DELETE", `/api/v1/devices/${number}`));
  });
})();
