// The Thrifty dashboard: one page, its views picked by the URL fragment
// (#/overview?since=...&feature=...), its data from the JSON endpoints under api/.
// Values from the ledger are attribution strings that clients chose, so they
// are only ever set as text, never parsed as HTML.
"use strict";

(() => {
  const FILTERS = ["provider", "model", "feature", "team", "project", "key", "user", "session"];
  const DAY_MS = 86400000;
  const view = document.getElementById("view");
  const form = document.getElementById("filters");

  // ---- small helpers ----

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function usd(text) {
    if (text === null || text === undefined) return "unpriced";
    const value = Number(text);
    if (value === 0) return "$0";
    if (Math.abs(value) >= 1) {
      return value.toLocaleString("en-US", { style: "currency", currency: "USD" });
    }
    // Below a dollar, three significant digits: per-request costs are fractions of a cent.
    return (value < 0 ? "-$" : "$") + Math.abs(value).toPrecision(3);
  }

  function count(value) {
    return value === null || value === undefined ? "" : Number(value).toLocaleString("en-US");
  }

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?", 2);
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(query || "");
    const defaults = defaultParams();
    for (const [name, value] of defaults) {
      if (!params.has(name)) params.set(name, value);
    }
    return { page: parts[0] || "overview", id: parts[1] || null, params };
  }

  function defaultParams() {
    const today = new Date(Date.now());
    const since = new Date(today.getTime() - 29 * DAY_MS);
    return new URLSearchParams({
      since: isoDay(since),
      to: isoDay(today),
      resolution: "day",
      stack: "model",
    });
  }

  // The API takes an exclusive `until`; the form's `to` day is inclusive.
  function apiParams(params, extra = {}) {
    const query = new URLSearchParams();
    query.set("since", params.get("since"));
    const to = new Date(params.get("to") + "T00:00:00Z");
    query.set("until", isoDay(new Date(to.getTime() + DAY_MS)));
    query.set("resolution", params.get("resolution") || "day");
    for (const name of FILTERS) {
      if (params.get(name)) query.set(name, params.get(name));
    }
    if (params.get("tag")) query.append("tag", params.get("tag"));
    for (const [name, value] of Object.entries(extra)) query.set(name, value);
    return query;
  }

  async function getJson(path, query) {
    const response = await fetch(query ? `${path}?${query}` : path, {
      headers: { accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.status === 401) {
      location.assign("login?next=" + encodeURIComponent(location.pathname + location.hash));
      throw new Error("log in to see this page");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    return body;
  }

  function csvLink(path, query) {
    const csvQuery = new URLSearchParams(query);
    csvQuery.set("format", "csv");
    return el("a", { href: `${path}?${csvQuery}`, class: "csv", download: "" }, "Export CSV");
  }

  function link(page, id, params, text) {
    const target = `#/${page}/${encodeURIComponent(id)}?${params}`;
    return el("a", { href: target, class: "drill" }, text);
  }

  function drill(params, name, value, text) {
    const next = new URLSearchParams(params);
    next.set(name, value);
    return el("a", { href: `#/overview?${next}`, class: "drill", title: `Filter on ${name}` }, text);
  }

  function panel(title, action, ...children) {
    return el("section", { class: "panel" }, el("h2", {}, el("span", { text: title }), action), ...children);
  }

  // columns: [{key, label, num, format(value, row) -> Node | string}]
  function table(columns, rows, emptyText = "Nothing recorded in this range.") {
    if (!rows.length) return el("p", { class: "empty", text: emptyText });
    const head = el("tr", {}, ...columns.map((c) => el("th", { class: c.num ? "num" : null, text: c.label })));
    const body = rows.map((row) =>
      el(
        "tr",
        {},
        ...columns.map((c) => {
          const value = row[c.key];
          let cell = value === null ? "(none)" : value;
          if (c.format) cell = c.format(value, row);
          const exact = c.money && value !== null ? String(value) : null;
          return el("td", { class: c.num ? "num" : null, title: exact }, cell);
        }),
      ),
    );
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  const money = (label, key) => ({ key, label, num: true, money: true, format: usd });
  const counted = (label, key) => ({ key, label, num: true, format: count });

  function cards(totals) {
    const items = [
      ["Spend", usd(totals.cost_usd), totals.cost_usd],
      ["Requests", count(totals.requests)],
      ["Input tokens", count(totals.input_tokens)],
      ["Output tokens", count(totals.output_tokens)],
      ["Cost per request", usd(totals.cost_per_request_usd), totals.cost_per_request_usd],
      ["Unpriced requests", count(totals.unpriced_requests)],
      ["Errors", count(totals.errors)],
    ];
    return el(
      "div",
      { class: "cards" },
      ...items.map(([label, value, exact]) =>
        el("div", { class: "card", title: exact || null }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value })),
      ),
    );
  }

  function plot(node, traces, layout) {
    if (typeof Plotly === "undefined") {
      node.replaceChildren(el("p", { class: "error", text: "The chart library did not load." }));
      return;
    }
    const base = {
      margin: { l: 60, r: 20, t: 10, b: 50 },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      legend: { orientation: "h", y: -0.2 },
    };
    Plotly.newPlot(node, traces, { ...base, ...layout }, { displaylogo: false, responsive: true });
  }

  // ---- pages ----

  async function overview(params) {
    const query = apiParams(params, { stack: params.get("stack") });
    const data = await getJson("api/overview", query);
    const chart = el("div", { class: "chart", id: "spend-chart" });
    const topPanels = [
      ["Top features", "feature"],
      ["Top models", "model"],
      ["Top teams", "team"],
      ["Top keys", "key"],
    ].map(([title, dimension]) =>
      panel(
        title,
        csvLink("api/top", apiParams(params, { dimension, limit: 500 })),
        table(
          [
            {
              key: "value",
              label: dimension,
              format: (value) => (value === null ? "(none)" : drill(params, dimension, value, value)),
            },
            counted("Requests", "requests"),
            counted("Input", "input_tokens"),
            counted("Output", "output_tokens"),
            money("Cost", "cost_usd"),
            money("Per request", "cost_per_request_usd"),
          ],
          data.top[dimension],
        ),
      ),
    );
    const page = [
      cards(data.totals),
      panel(`Spend by ${data.stack}`, csvLink("api/series", query), chart),
      el("div", { class: "grid2", id: "top-lists" }, ...topPanels),
    ];
    view.replaceChildren(...page);
    const traces = data.series.stacks.map((stack) => ({
      type: "bar",
      name: stack.name,
      x: data.series.buckets,
      y: stack.cost_usd.map(Number),
      customdata: stack.cost_usd,
      hovertemplate: "%{x}<br>" + stack.name.replace(/[<>&%]/g, "") + ": $%{customdata}<extra></extra>",
    }));
    plot(chart, traces, { barmode: "stack", yaxis: { title: { text: "USD" }, rangemode: "tozero" } });
  }

  async function savings(params) {
    const query = apiParams(params);
    const data = await getJson("api/savings", query);
    const chart = el("div", { class: "chart", id: "savings-chart" });
    const levers = [
      ["Response cache", "response_cache_usd"],
      ["Prompt caching", "prompt_caching_usd"],
      ["Batch", "batch_usd"],
      ["Flex", "flex_usd"],
    ];
    view.replaceChildren(
      el(
        "div",
        { class: "cards" },
        ...[["Spend", "cost_usd"], ["At standard prices", "standard_usd"], ["Saved", "saved_usd"], ...levers].map(
          ([label, key]) => el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: usd(data.totals[key]) })),
        ),
      ),
      panel("Saved by lever", null, chart),
      panel(
        "Savings per feature",
        csvLink("api/savings", query),
        table(
          [
            { key: "feature", label: "feature" },
            counted("Requests", "requests"),
            money("Spend", "cost_usd"),
            money("At standard prices", "standard_usd"),
            ...levers.map(([label, key]) => money(label, key)),
            money("Saved", "saved_usd"),
            counted("Not estimated", "unestimated_requests"),
          ],
          data.features,
        ),
        el("p", {
          class: "note",
          text:
            "Response-cache savings are what the cached calls cost. Prompt caching, Batch and Flex " +
            "savings are estimates: each day's requests of a model are priced at their mean size at standard prices.",
        }),
      ),
    );
    plot(chart, [{ type: "bar", x: levers.map(([label]) => label), y: levers.map(([, key]) => Number(data.totals[key])) }], {
      yaxis: { title: { text: "USD saved" } },
    });
  }

  async function unitCosts(params) {
    const featureQuery = apiParams(params, { of: "feature" });
    const conversationQuery = apiParams(params, { of: "conversation" });
    const feature = await getJson("api/unit-costs", featureQuery);
    const conversation = await getJson("api/unit-costs", conversationQuery);
    const chart = el("div", { class: "chart", id: "unit-chart" });
    const summaries = (data) =>
      data.series.filter((series) => series.summary).map((series) => ({ name: series.name, ...series.summary }));
    const columns = (label) => [
      { key: "name", label },
      counted("Count", "count"),
      money("Mean", "mean_usd"),
      money("p95", "p95_usd"),
      money("Total", "cost_usd"),
    ];
    view.replaceChildren(
      panel("Mean cost of one feature call", null, chart),
      el(
        "div",
        { class: "grid2" },
        panel("Cost per feature call", csvLink("api/unit-costs", featureQuery), table(columns("feature"), summaries(feature))),
        panel("Cost per conversation", csvLink("api/unit-costs", conversationQuery), table(columns("series"), summaries(conversation))),
      ),
      el("p", {
        class: "note",
        text:
          "p95 is the nearest-rank 95th percentile, in whole nano-dollars. " +
          (feature.p95 && feature.p95.method === "histogram"
            ? "Per feature call it is approximate, read from cost histograms: " + feature.p95.bound + ". "
            : "") +
          "Per conversation it is exact. The CSV exports list every bucket.",
      }),
    );
    const points = (series) => feature.buckets.filter((bucket) => bucket in series.points);
    plot(
      chart,
      feature.series.map((series) => ({
        type: "scatter",
        mode: "lines+markers",
        name: series.name === null ? "(none)" : series.name,
        x: points(series),
        y: points(series).map((bucket) => Number(series.points[bucket].mean_usd)),
      })),
      { yaxis: { title: { text: "USD per request" }, rangemode: "tozero" } },
    );
  }

  async function people(params) {
    const users = await getJson("api/spenders", apiParams(params, { dimension: "user" }));
    const customers = await getJson("api/spenders", apiParams(params, { dimension: "customer" }));
    const sessions = await getJson("api/top", apiParams(params, { dimension: "session", limit: 20 }));
    const spenderColumns = (label, name) => [
      { key: "value", label, format: (value) => (value === null ? "(none)" : drill(params, name, value, value)) },
      counted("Requests", "requests"),
      money("Cost", "cost_usd"),
      money("Per request", "cost_per_request_usd"),
    ];
    view.replaceChildren(
      el(
        "div",
        { class: "grid2" },
        panel("Top users", csvLink("api/spenders", apiParams(params, { dimension: "user" })), table(spenderColumns("user", "user"), users.rows)),
        panel(
          "Top customers",
          csvLink("api/spenders", apiParams(params, { dimension: "customer" })),
          table(
            [{ key: "value", label: customers.dimension }, counted("Requests", "requests"), money("Cost", "cost_usd"), money("Per request", "cost_per_request_usd")],
            customers.rows,
          ),
        ),
      ),
      panel(
        "Top sessions",
        csvLink("api/top", apiParams(params, { dimension: "session", limit: 500 })),
        table(
          [
            { key: "value", label: "session", format: (value) => (value === null ? "(none)" : link("sessions", value, params, value)) },
            counted("Requests", "requests"),
            counted("Input", "input_tokens"),
            counted("Output", "output_tokens"),
            money("Cost", "cost_usd"),
          ],
          sessions.rows,
        ),
      ),
    );
  }

  function requestColumns(params) {
    return [
      { key: "started_at", label: "started" },
      { key: "request_id", label: "request", format: (value) => link("requests", value, params, value) },
      { key: "model", label: "model" },
      { key: "feature", label: "feature" },
      { key: "session", label: "session", format: (value) => (value === null ? "(none)" : link("sessions", value, params, value)) },
      counted("Input", "input_tokens"),
      counted("Cached", "cache_read_tokens"),
      counted("Output", "output_tokens"),
      money("Cost", "cost_usd"),
      { key: "latency_ms", label: "latency ms", num: true, format: count },
      { key: "cache_status", label: "cache" },
      { key: "http_status", label: "status", num: true },
    ];
  }

  async function requests(params) {
    const query = apiParams(params);
    const data = await getJson("api/requests", query);
    view.replaceChildren(panel("Latest requests", csvLink("api/requests", query), table(requestColumns(params), data.rows)));
  }

  async function sessionPage(params, id) {
    const data = await getJson(`api/sessions/${encodeURIComponent(id)}`);
    view.replaceChildren(
      cards(data.totals),
      panel(
        `Session ${id}`,
        csvLink(`api/sessions/${encodeURIComponent(id)}`, new URLSearchParams()),
        table(requestColumns(params), data.requests, "No request of this session is recorded."),
        data.truncated ? el("p", { class: "note", text: "Only the first requests of this session are listed." }) : null,
      ),
    );
  }

  async function requestPage(params, id) {
    const data = await getJson(`api/requests/${encodeURIComponent(id)}`);
    const rows = Object.entries(data.record).map(([field, value]) => ({
      field,
      value: value !== null && typeof value === "object" ? JSON.stringify(value) : value,
    }));
    view.replaceChildren(
      panel(
        `Request ${id}`,
        null,
        table([{ key: "field", label: "field" }, { key: "value", label: "value" }], rows),
        el("p", { class: "note", text: "The ledger stores no request or response bodies." }),
      ),
    );
  }

  async function budgets(params) {
    const data = await getJson("api/budgets");
    if (!data.available) {
      view.replaceChildren(panel("Budgets", null, el("p", { class: "empty", text: data.reason })));
      return;
    }
    const bar = (value, row) => {
      const used = Math.min(Number(row.used_fraction), 1);
      const node = el("div", { class: "bar", title: `${(Number(row.used_fraction) * 100).toFixed(1)}% used` });
      node.append(el("div", { class: `fill ${row.status}`, style: `width: ${(used * 100).toFixed(1)}%` }));
      for (const threshold of row.thresholds) {
        const at = Math.min(Number(threshold.fraction), 1) * 100;
        node.append(el("div", { class: "mark", style: `left: ${at.toFixed(1)}%`, title: `${threshold.fraction} of the limit` }));
      }
      return node;
    };
    view.replaceChildren(
      panel(
        "Budgets",
        csvLink("api/budgets", new URLSearchParams()),
        table(
          [
            { key: "scope", label: "scope" },
            { key: "period", label: "period" },
            { key: "window", label: "window" },
            money("Limit", "limit_usd"),
            money("Spent", "spent_usd"),
            { key: "used_fraction", label: "used", format: bar },
            money("Projected", "projected_usd"),
            { key: "status", label: "status" },
          ],
          data.budgets,
          "No budget is set. Create one with the admin API or `thrifty budgets`.",
        ),
      ),
    );
  }

  async function alerts() {
    const data = await getJson("api/control");
    if (!data.available) {
      view.replaceChildren(panel("Alerts and cutoffs", null, el("p", { class: "empty", text: data.reason })));
      return;
    }
    view.replaceChildren(
      panel("Active cutoffs", null, table([{ key: "scope", label: "scope" }, { key: "reason", label: "reason" }, { key: "created_at", label: "since" }], data.cutoffs, "No cutoff is active.")),
      panel(
        "Control changes",
        null,
        table(
          [
            { key: "at", label: "at" },
            { key: "action", label: "action" },
            { key: "target", label: "target" },
          ],
          data.audit,
          "No key, budget or cutoff has changed yet.",
        ),
        el("p", { class: "note", text: "Alerts go to the configured sinks and are not stored; key, budget and cutoff changes are listed here." }),
      ),
    );
  }

  async function batches() {
    const data = await getJson("api/batches");
    if (!data.available) {
      view.replaceChildren(panel("Batch jobs", null, el("p", { class: "empty", text: data.reason })));
      return;
    }
    const progress = (value, row) => {
      const node = el("div", { class: "bar", title: `${row.done} of ${row.requests} requests done` });
      node.append(el("div", { class: "fill", style: `width: ${(Number(value) * 100).toFixed(1)}%` }));
      return node;
    };
    view.replaceChildren(
      panel(
        "Batch jobs",
        csvLink("api/batches", new URLSearchParams()),
        table(
          [
            { key: "job_id", label: "job" },
            { key: "name", label: "name" },
            { key: "provider", label: "provider" },
            { key: "status", label: "status" },
            { key: "progress", label: "progress", format: progress },
            counted("Requests", "requests"),
            counted("Succeeded", "succeeded"),
            counted("Failed", "failed"),
            counted("Expired", "expired"),
            money("Cost", "cost_usd"),
            money("Saved", "saved_usd"),
            { key: "created_at", label: "created" },
          ],
          data.jobs,
          "No batch job yet. Submit one with `thrifty batch submit FILE`.",
        ),
      ),
    );
  }

  async function advice(params) {
    const query = apiParams(params);
    const data = await getJson("api/advice", query);
    const plan = data.plan;
    const chart = el("div", { class: "chart", id: "advice-chart" });
    const range = (low, high) => `${usd(low)} to ${usd(high)}`;
    const forecastColumns = (label) => [
      { key: "key", label },
      money("Spent", "spent_usd"),
      money("Projected", "projected_usd"),
      { key: "low_usd", label: "Interval (about 95%)", num: true, format: (value, row) => range(value, row.high_usd) },
    ];
    view.replaceChildren(
      el(
        "div",
        { class: "cards" },
        el("div", { class: "card" }, el("div", { class: "label", text: "Spend a month" }), el("div", { class: "value", text: usd(plan.monthly_spend_usd) })),
        el("div", { class: "card" }, el("div", { class: "label", text: "Possible saving a month" }), el("div", { class: "value", text: range(plan.saving_low_usd, plan.saving_high_usd) })),
        el("div", { class: "card" }, el("div", { class: "label", text: "Anomalies" }), el("div", { class: "value", text: count(data.anomalies.length) })),
      ),
      panel(
        "Savings plan",
        null,
        table(
          [
            { key: "title", label: "lever" },
            { key: "saving_low_usd", label: "Saving a month", num: true, format: (value, row) => range(value, row.saving_high_usd) },
            money("Applies to", "applies_to_usd"),
            counted("Requests", "requests"),
            { key: "features", label: "features", format: (value) => value.join(", ") },
            { key: "config", label: "config", format: (value) => el("pre", { text: value }) },
          ],
          plan.levers,
          "No lever saves money on this range.",
        ),
        ...plan.advice.map((item) => el("p", { class: "note", text: `${item.title}: ${item.detail}` })),
      ),
      panel("Spend by feature, before and after the plan", null, chart),
      panel(
        "Anomalies",
        null,
        table(
          [
            { key: "kind", label: "kind" },
            { key: "subject", label: "subject" },
            { key: "period", label: "period" },
            { key: "message", label: "finding" },
          ],
          data.anomalies,
          "No anomaly in the last complete hour or today.",
        ),
      ),
      panel(
        "Month-end forecast by budget",
        null,
        table(
          [{ key: "budget_id", label: "budget" }, money("Limit", "limit_usd"), ...forecastColumns("scope"), { key: "overspend", label: "over limit", format: (value) => (value ? "yes" : "no") }],
          data.forecast.budgets,
          "No monthly budget is set.",
        ),
      ),
      panel("Month-end forecast by feature", null, table(forecastColumns("feature"), data.forecast.features, "No spend this month.")),
      panel("Month-end forecast by team", null, table(forecastColumns("team"), data.forecast.teams, "No spend this month.")),
    );
    const names = plan.features.map((row) => row.feature);
    plot(
      chart,
      [
        ["now", "monthly_usd"],
        ["after (cautious)", "after_cautious_usd"],
        ["after (generous)", "after_generous_usd"],
      ].map(([name, key]) => ({ type: "bar", name, x: names, y: plan.features.map((row) => Number(row[key])) })),
      { barmode: "group", yaxis: { title: { text: "USD a month" } } },
    );
  }

  const PAGES = {
    overview,
    savings,
    "unit-costs": unitCosts,
    people,
    requests: (params, id) => (id ? requestPage(params, id) : requests(params)),
    sessions: sessionPage,
    budgets,
    alerts,
    batches,
    advice,
  };

  // ---- the filter form and navigation ----

  function fillForm(params) {
    for (const element of form.elements) {
      if (element.name) element.value = params.get(element.name) || "";
    }
    if (!form.elements.resolution.value) form.elements.resolution.value = "day";
    if (!form.elements.stack.value) form.elements.stack.value = "model";
  }

  function formParams() {
    const params = new URLSearchParams();
    for (const element of form.elements) {
      if (element.name && element.value) params.set(element.name, element.value.trim());
    }
    return params;
  }

  async function render() {
    const { page, id, params } = route();
    fillForm(params);
    for (const anchor of document.querySelectorAll("#nav a")) {
      anchor.classList.toggle("active", anchor.dataset.page === page || (page === "sessions" && anchor.dataset.page === "requests"));
      anchor.href = `#/${anchor.dataset.page}?${params}`;
    }
    const show = PAGES[page] || overview;
    view.replaceChildren(el("p", { class: "empty", text: "Loading…" }));
    try {
      await show(params, id);
      document.body.dataset.loaded = page;
    } catch (error) {
      view.replaceChildren(el("p", { class: "error", text: error.message }));
      document.body.dataset.loaded = "error";
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { page, id } = route();
    const target = id ? `${page}/${encodeURIComponent(id)}` : page;
    location.hash = `#/${target}?${formParams()}`;
  });
  document.getElementById("reset").addEventListener("click", () => {
    location.hash = `#/${route().page}`;
  });
  window.addEventListener("hashchange", render);

  getJson("api/me").then((me) => {
    if (me.login_required) {
      const logout = document.getElementById("logout");
      document.getElementById("role").textContent = me.role === "admin" ? "master key" : "read-only";
      logout.hidden = false;
    }
  });
  render();
})();
