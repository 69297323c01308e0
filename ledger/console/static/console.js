// The console's few behaviours: "Verify now", the two graphs (cytoscape.js, laid out by its own
// layouts), and the edge panel that re-checks each record on the member's machine. No inline
// script (the Content-Security-Policy forbids it) and nothing fetched from any other origin.
"use strict";

(function () {
  const page = document.body.dataset.page;

  function json(url, options) {
    const init = Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, options || {});
    return fetch(url, init).then((response) =>
      response.json().then((body) => {
        if (!response.ok) {
          throw new Error(body && body.message ? `[${body.code}] ${body.message}` : `HTTP ${response.status}`);
        }
        return body;
      })
    );
  }

  // Builds DOM from text only: nothing the broker says is ever parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // -- "Verify now" ----------------------------------------------------------------------------

  function setupVerify() {
    const button = document.getElementById("verify-now");
    if (!button) return;
    const box = document.getElementById("verification");
    const bar = document.getElementById("verify-progress");
    const status = document.getElementById("verify-status");
    const problems = document.getElementById("verify-problems");

    function show(v) {
      const job = v.job;
      bar.max = Math.max(job.total, 1);
      bar.value = job.running ? job.done : bar.max;
      if (job.running) {
        status.textContent = `${job.stage}: ${job.done} of ${job.total}`;
      } else if (job.error) {
        status.textContent = job.error;
      } else if (job.result) {
        status.textContent = `${job.result.ok ? "ok" : "problems found"} at ${job.finished_at}`;
      }
      if (v.overseer) {
        document.getElementById("v-checkpoint").textContent = `size ${v.checkpoint_size}`;
        document.getElementById("v-records").textContent = String(v.records);
        document.getElementById("v-when").textContent = v.when || "not yet by the console";
      }
      problems.replaceChildren(
        ...((job.result && job.result.problems) || []).map((p) => el("li", {}, el("code", {}, `[${p.code}]`), ` ${p.where}: ${p.what}`))
      );
      box.dataset.state = job.running ? "running" : "done";
      box.dataset.runs = String(job.runs);
    }

    let asked = false;

    function poll() {
      json("/data/verify").then((v) => {
        show(v);
        if (v.job.running) window.setTimeout(poll, 250);
        else if (asked) window.location.reload(); // every figure on the page, as now verified
        else button.disabled = false;
      }, (error) => {
        status.textContent = String(error.message || error);
        button.disabled = false;
      });
    }

    button.addEventListener("click", () => {
      asked = true;
      button.disabled = true;
      box.dataset.state = "running";
      status.textContent = "starting…";
      json("/verify", { method: "POST" }).then(poll, (error) => {
        status.textContent = String(error.message || error);
        button.disabled = false;
      });
    });
    if (box.dataset.state === "running") poll();
  }

  // -- graphs ----------------------------------------------------------------------------------

  const KIND_COLOURS = { department: "#2563eb", enterprise: "#ea580c", regulator: "#7c3aed", unknown: "#6b7280" };
  const CLASS_COLOURS = { public: "#16a34a", internal: "#d97706", sensitive: "#dc2626", unknown: "#6b7280" };

  const BASE_STYLE = [
    {
      selector: "node",
      style: {
        label: "data(label)",
        "font-size": 11,
        "text-valign": "bottom",
        "text-margin-y": 6,
        "text-wrap": "wrap",
        "text-max-width": 140,
        width: 34,
        height: 34,
        "border-width": 2,
        "border-color": "#1f2937",
      },
    },
    { selector: "node.focus", style: { "border-width": 5, "border-color": "#111827" } },
    {
      selector: "edge",
      style: {
        width: 3,
        "curve-style": "bezier",
        "target-arrow-shape": "triangle",
        "font-size": 10,
        "text-rotation": "none",
        "text-background-color": "#ffffff",
        "text-background-opacity": 0.85,
      },
    },
    { selector: "edge:selected", style: { width: 6 } },
  ];

  const FLOW_STYLE = BASE_STYLE.concat(
    Object.entries(KIND_COLOURS).map(([kind, colour]) => ({ selector: `node.${kind}`, style: { "background-color": colour } })),
    [
      { selector: "node.enterprise", style: { shape: "round-rectangle" } },
      { selector: "node.regulator", style: { shape: "diamond" } },
      { selector: "node.suspended", style: { "background-opacity": 0.4 } },
      { selector: "edge", style: { label: "data(label)", "line-color": "#059669", "target-arrow-color": "#059669" } },
      { selector: "edge.requested", style: { "line-style": "dashed", "line-color": "#9ca3af", "target-arrow-color": "#9ca3af" } },
      { selector: "edge.exhausted", style: { "line-color": "#64748b", "target-arrow-color": "#64748b" } },
      { selector: "edge.expired", style: { "line-style": "dotted", "line-color": "#a16207", "target-arrow-color": "#a16207" } },
      { selector: "edge.revoked", style: { "line-style": "dashed", "line-color": "#dc2626", "target-arrow-color": "#dc2626", "target-arrow-shape": "tee" } },
      { selector: "edge.attempted", style: { "underlay-color": "#dc2626", "underlay-opacity": 0.25, "underlay-padding": 6 } },
    ]
  );

  const LINEAGE_STYLE = BASE_STYLE.concat(
    Object.entries(CLASS_COLOURS).map(([name, colour]) => ({ selector: `node.${name}`, style: { "background-color": colour } })),
    [
      { selector: "node", style: { shape: "round-rectangle", width: 46, height: 28 } },
      { selector: "node.from-sensitive", style: { "border-color": "#dc2626", "border-width": 5, "border-style": "double" } },
      { selector: "edge.derived", style: { "line-color": "#475569", "target-arrow-color": "#475569" } },
      { selector: "edge.version", style: { "line-style": "dashed", "line-color": "#0ea5e9", "target-arrow-color": "#0ea5e9" } },
    ]
  );

  function field(dl, name, value) {
    if (value === undefined || value === null || value === "") return;
    dl.append(el("dt", {}, name), el("dd", {}, String(value)));
  }

  function recordItem(seq) {
    const item = el("li", { class: "record pending", "data-seq": String(seq) }, el("a", { href: `/records/${seq}` }, `#${seq}`), " …");
    const done = json(`/data/records/${seq}`).then(
      (r) => {
        const sig = r.signature.ok ? "signature ✓" : `signature ✗ ${r.signature.why}`;
        const inc = r.inclusion.ok ? `included ✓ (head of ${r.inclusion.tree_size})` : `inclusion ✗ ${r.inclusion.why}`;
        item.className = `record ${r.signature.ok && r.inclusion.ok ? "good" : "bad"}`;
        item.dataset.signature = r.signature.ok ? "ok" : "bad";
        item.dataset.inclusion = r.inclusion.ok ? "ok" : "bad";
        const parts = [
          el("a", { href: `/records/${seq}` }, `#${seq}`),
          ` ${r.action} by ${r.actor_name} · ${r.at.slice(0, 19).replace("T", " ")} · `,
          el("span", { class: "sig" }, sig),
          " · ",
          el("span", { class: "inc" }, inc),
          r.context.refused ? el("span", { class: "bad" }, ` · refused: ${r.context.refused}`) : null,
          r.tx ? el("small", {}, ` · on chain ${r.chain}`) : null,
        ];
        item.replaceChildren(...parts.filter((part) => part !== null));
      },
      (error) => {
        item.className = "record bad";
        item.dataset.inclusion = "error";
        item.replaceChildren(`#${seq}: ${error.message || error}`);
      }
    );
    return [item, done];
  }

  function showEdge(data, src) {
    const panel = document.getElementById("panel");
    const dl = el("dl", {});
    field(dl, "dataset", `#${data.dataset} ${data.title}`);
    field(dl, "status", data.status);
    field(dl, "purpose", data.purpose);
    field(dl, "category", data.category);
    field(dl, "uses", data.uses_text);
    field(dl, "fetches", data.fetches);
    field(dl, "refused fetches", data.refused || null);
    field(dl, "receipts", data.receipts);
    field(dl, "requested", data.requested_at);
    field(dl, "granted", data.granted_at);
    field(dl, "expires", data.expires_at);
    field(dl, "revoked", data.revoked_at);
    const list = el("ul", { id: "edge-records", class: "records" });
    const params = new URLSearchParams({ dataset: String(data.dataset), member: data.target, limit: "20" });
    for (const key of ["since", "until"]) {
      if (src.get(key)) params.set(key, src.get(key));
    }
    panel.replaceChildren(
      el("h2", {}, "Flow"),
      dl,
      el("h3", {}, "Signed records, re-checked here"),
      list,
      el("p", {}, el("a", { href: `/timeline?${params}` }, "all of them on the timeline"))
    );
    panel.dataset.state = "loading";
    panel.dataset.edge = data.id;
    json(`/data/timeline?${params}`)
      .then((page) => {
        const waits = page.records.map((r) => {
          const [item, done] = recordItem(r.seq);
          list.append(item);
          return done;
        });
        return Promise.all(waits);
      })
      .then(
        () => { panel.dataset.state = "loaded"; },
        (error) => { list.append(el("li", { class: "bad" }, String(error.message || error))); panel.dataset.state = "error"; }
      );
  }

  function showDataset(data) {
    const panel = document.getElementById("panel");
    const dl = el("dl", {});
    field(dl, "classification", data.classification);
    field(dl, "owner", data.owner_name);
    field(dl, "registered", data.registered_at);
    if (data.from_sensitive) field(dl, "warning", "derived from SENSITIVE data");
    panel.replaceChildren(
      el("h2", {}, data.label),
      dl,
      el("p", {}, el("a", { href: `/datasets/${data.dataset}` }, "certificate, versions and quality"), " · ",
        el("a", { href: `/flow?dataset=${data.dataset}` }, "flows"))
    );
  }

  // Library layouts only: owners above the consumers they supply (breadthfirst) while the graph
  // is small enough to read that way, a force-directed one (cose) for a larger network.
  function layout(kind, size) {
    if (kind === "flow" && size > 12) {
      return { name: "cose", animate: false, padding: 40, nodeRepulsion: () => 1000000, idealEdgeLength: () => 180 };
    }
    return { name: "breadthfirst", directed: true, animate: false, padding: 60, spacingFactor: 1.3 };
  }

  function setupGraph() {
    const box = document.getElementById("graph");
    if (!box) return;
    const kind = box.dataset.kind;
    const src = new URL(box.dataset.src, window.location.origin).searchParams;
    json(box.dataset.src).then(
      (data) => {
        const cy = window.cytoscape({
          container: box,
          elements: { nodes: data.nodes, edges: data.edges },
          style: kind === "flow" ? FLOW_STYLE : LINEAGE_STYLE,
          layout: layout(kind, data.nodes.length),
          minZoom: 0.2,
          maxZoom: 1.5,
        });
        if (kind === "flow") cy.on("tap", "edge", (event) => showEdge(event.target.data(), src));
        else cy.on("tap", "node", (event) => showDataset(event.target.data()));
        window.drlGraph = cy;
        if (!data.nodes.length) box.append(el("p", { class: "empty" }, "Nothing to draw in this scope."));
        box.dataset.state = "ready";
      },
      (error) => {
        box.dataset.state = "error";
        box.replaceChildren(el("p", { class: "bad" }, String(error.message || error)));
      }
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (page === "overview") setupVerify();
    if (page === "flow" || page === "lineage") setupGraph();
  });
})();
