// textclf's page: every call goes to the UI's own server, which forwards it to the predictor or the monitor.
// Text from the models and the monitor is put on the page as text nodes, never as HTML.
"use strict";

const state = { labels: [], version: null };

// Registry versions read "v3"; a model directory's digest reads as it is.
function versionText(version) {
  return /^\d+$/.test(String(version)) ? `v${version}` : String(version ?? "?");
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? body.error : typeof body === "string" ? body : JSON.stringify(body);
    throw new Error(`${response.status}: ${message}`);
  }
  return { body, headers: response.headers };
}

function postJson(path, payload) {
  return api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
}

function showStatus(id, message, failed = false) {
  const node = document.getElementById(id);
  node.textContent = message;
  node.classList.toggle("error", failed);
}

async function loadModel() {
  try {
    const { body } = await api("/api/model");
    state.labels = (body.parameters && body.parameters.labels) || [];
    state.version = (body.versions || [])[0] || null;
    document.getElementById("model").textContent =
      `model ${body.name} ${versionText(state.version)} · classes: ${state.labels.join(", ")}`;
  } catch (error) {
    document.getElementById("model").textContent = `predictor unavailable: ${error.message}`;
  }
}

function output(outputs, name) {
  return outputs.find((candidate) => candidate.name === name);
}

function highlightedText(text, explanation) {
  const paragraph = element("p", { class: "text", "data-testid": "text" });
  if (!explanation || !explanation.words.length) {
    paragraph.textContent = text;
    return paragraph;
  }
  const strongest = Math.max(...explanation.words.map((word) => Math.abs(word.attribution)), 1e-9);
  let position = 0;
  for (const word of explanation.words) {
    paragraph.append(text.slice(position, word.start));
    const share = Math.abs(word.attribution) / strongest;
    const colour = word.attribution >= 0 ? `rgba(0, 150, 60, ${0.6 * share})` : `rgba(210, 30, 30, ${0.6 * share})`;
    paragraph.append(
      element("mark", {
        text: text.slice(word.start, word.end),
        title: `${word.word}: ${word.attribution >= 0 ? "+" : ""}${word.attribution.toFixed(3)}`,
        "data-attribution": String(word.attribution),
        style: { backgroundColor: colour },
      }),
    );
    position = word.end;
  }
  paragraph.append(text.slice(position));
  return paragraph;
}

function probabilityBars(probabilities, labels = state.labels) {
  const list = element("div", { class: "bars" });
  labels.forEach((label, column) => {
    const value = probabilities[column];
    list.append(
      element(
        "div",
        { class: "bar-row" },
        element("span", { class: "bar-label", text: label }),
        element("span", { class: "bar" }, element("span", { class: "fill", style: { width: `${100 * value}%` } })),
        element("span", { class: "bar-value", "data-testid": `probability-${label}`, text: value.toFixed(3) }),
      ),
    );
  });
  return list;
}

function correctionForm(requestId, index, predicted) {
  const select = element("select", { "aria-label": "right label", "data-testid": "correct-label" });
  for (const label of state.labels) {
    const option = element("option", { value: label, text: label });
    if (label === predicted) option.selected = true;
    select.append(option);
  }
  const result = element("span", { class: "status", "data-testid": "correction-status" });
  const button = element("button", { type: "button", "data-testid": "correct", text: "Correct" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const { body } = await postJson("/api/feedback", { request_id: requestId, label: select.value, index });
      result.textContent = `sent to the monitor (stored ${body.stored}, matched ${body.matched_predictions})`;
      result.classList.remove("error");
    } catch (error) {
      result.textContent = `not sent: ${error.message}`;
      result.classList.add("error");
    } finally {
      button.disabled = false;
    }
  });
  return element("div", { class: "correction" }, "Right label: ", select, " ", button, " ", result);
}

async function classify(event) {
  event.preventDefault();
  const texts = document.getElementById("texts").value.split("\n").map((line) => line.trim()).filter(Boolean);
  const results = document.getElementById("results");
  if (!texts.length) {
    showStatus("classify-status", "type at least one text", true);
    return;
  }
  const explain = document.getElementById("explain").checked;
  showStatus("classify-status", explain ? "classifying and explaining…" : "classifying…");
  try {
    if (!state.labels.length) await loadModel();
    const { body, headers } = await postJson("/api/classify", { texts, explain });
    const requestId = headers.get("x-request-id");
    const labels = output(body.outputs, "label").data;
    const scores = output(body.outputs, "score").data;
    const probabilities = output(body.outputs, "probabilities").data;
    const explanations = output(body.outputs, "explanation");
    const width = state.labels.length;
    results.replaceChildren();
    texts.forEach((text, index) => {
      const explanation = explanations ? JSON.parse(explanations.data[index]) : null;
      results.append(
        element(
          "article",
          { class: "result", "data-testid": "result" },
          highlightedText(text, explanation),
          element(
            "p",
            { class: "verdict" },
            element("strong", { "data-testid": "label", text: labels[index] }),
            ` with probability ${scores[index].toFixed(3)}`,
          ),
          probabilityBars(probabilities.slice(index * width, (index + 1) * width)),
          correctionForm(requestId, index, labels[index]),
        ),
      );
    });
    showStatus("classify-status", `model ${versionText(body.model_version)} · request ${requestId}`);
  } catch (error) {
    showStatus("classify-status", error.message, true);
  }
}

function table(rows, columns) {
  if (!rows.length) return element("p", { class: "empty", text: "none yet" });
  const head = element("tr", {}, ...columns.map(([title]) => element("th", { text: title })));
  const body = rows.map((row) => element("tr", {}, ...columns.map(([, cell]) => element("td", {}, cell(row)))));
  return element("table", {}, element("thead", {}, head), element("tbody", {}, ...body));
}

function scoreList(scores) {
  const list = element("ul", { class: "scores" });
  for (const [name, score] of Object.entries(scores || {})) {
    const side = score.drift_when === "below" ? "<" : ">";
    list.append(
      element("li", {
        class: score.drifted ? "drifted" : "",
        text:
          score.score === null
            ? `${name}: not computed`
            : `${name}: ${Number(score.score).toPrecision(3)} (drift ${side} ${Number(score.threshold).toPrecision(3)})`,
      }),
    );
  }
  return list;
}

function gateText(run) {
  if (run.promotion_decision) return `${run.promotion_decision}: ${run.promotion_reason || ""}`;
  return run.outcome_error || "not decided yet";
}

function reportLink(name) {
  return name ? element("a", { href: `/api/monitor/reports/${name}.html`, target: "_blank", rel: "noopener", text: name }) : "";
}

function estimateText(estimate) {
  if (!estimate) return "not yet: the window is below the size a check judges";
  const [low, high] = estimate.accuracy_interval;
  return `${estimate.accuracy.toFixed(4)} (${Math.round(100 * estimate.level)} % interval ${low.toFixed(3)} to ${high.toFixed(3)}), macro F1 ${estimate.macro_f1.toFixed(4)}`;
}

function quality(body) {
  const { estimated, ...measured } = body;
  const rows = Object.entries(measured).filter(([, value]) => value === null || typeof value !== "object");
  const perClass = Object.entries(measured).filter(([, value]) => value !== null && typeof value === "object");
  const list = element("dl", {});
  list.append(element("dt", { text: "estimated accuracy, without labels" }), element("dd", { "data-testid": "estimated", text: estimateText(estimated) }));
  for (const [name, value] of [...rows, ...perClass]) {
    const shown = typeof value === "number" ? (Number.isInteger(value) ? value : value.toFixed(4)) : value;
    list.append(element("dt", { text: name }), element("dd", { text: typeof shown === "object" ? JSON.stringify(shown) : String(shown) }));
  }
  return list;
}

async function refreshMonitor() {
  showStatus("monitor-status", "loading…");
  try {
    const [qualityAnswer, checks, retraining, reports] = await Promise.all([
      ...["quality", "checks", "retraining", "reports"].map((what) => api(`/api/monitor/${what}`).then((answer) => answer.body)),
      refreshDashboard(),
    ]);
    document.getElementById("quality").replaceChildren(quality(qualityAnswer));
    document.getElementById("checks").replaceChildren(
      table(checks, [
        ["when", (check) => check.checked_at],
        ["version", (check) => String(check.model_version)],
        ["decision", (check) => element("span", { class: `decision ${check.decision}`, "data-testid": "decision", text: check.decision })],
        ["scores against thresholds", (check) => scoreList(check.scores)],
        ["estimated accuracy", (check) => (check.estimate ? check.estimate.accuracy.toFixed(3) : "")],
        ["reason", (check) => check.reason],
        ["report", (check) => reportLink(check.report)],
      ]),
    );
    document.getElementById("retraining").replaceChildren(
      table(retraining, [
        ["started", (run) => run.started_at],
        ["status", (run) => run.status],
        ["reason", (run) => run.reason],
        ["gate", (run) => gateText(run)],
        ["version", (run) => (run.registered_version ? versionText(run.registered_version) : "")],
        ["deploy", (run) => run.deploy_outcome || ""],
        ["run", (run) => [run.run_id, run.mlflow_run_id && `MLflow ${run.mlflow_run_id}`, run.detail].filter(Boolean).join(" · ")],
      ]),
    );
    document.getElementById("reports").replaceChildren(
      table(reports, [["report", (report) => reportLink(report.name)]]),
    );
    showStatus("monitor-status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    showStatus("monitor-status", error.message, true);
  }
}

// ---- the dashboard: time series from the monitor's store, drawn by plotly.js (served from its PyPI package) ----

const CHART_LAYOUT = { margin: { l: 50, r: 20, t: 36, b: 40 }, legend: { orientation: "h" }, hovermode: "x unified" };
const CHART_CONFIG = { displaylogo: false, responsive: true };

function plot(id, title, traces, layout = {}) {
  Plotly.react(id, traces, { ...CHART_LAYOUT, title: { text: title, font: { size: 14 } }, ...layout }, CHART_CONFIG);
}

function groupList(groups) {
  if (!groups || !groups.length) return element("p", { class: "empty", text: "no groups: this check found no drift" });
  const list = element("ol", { class: "groups" });
  for (const group of groups) {
    const terms = group.terms.map((term) => term.term).join(", ") || "no distinguishing words";
    const live = group.live_accuracy === null ? "" : `, live accuracy ${group.live_accuracy.toFixed(2)} (${group.labelled} labels)`;
    list.append(
      element(
        "li",
        { "data-testid": "drift-group" },
        element("strong", { text: terms }),
        ` — ${(100 * group.window_share).toFixed(0)} % of the window (${(100 * group.reference_share).toFixed(0)} % of the reference), ` +
          `estimated accuracy ${group.estimated_accuracy.toFixed(2)}${live}`,
        element("ul", {}, ...group.examples.map((text) => element("li", { class: "why", text }))),
      ),
    );
  }
  return list;
}

function showCheck(check) {
  const detail = document.getElementById("check-detail");
  detail.replaceChildren(
    element("h3", { text: `Check ${check.check_id} at ${check.checked_at}: ${check.decision}` }),
    element("p", { text: check.reason }),
    check.report ? element("p", {}, "Report: ", reportLink(check.report)) : "",
    groupList(check.groups),
  );
}

function drawDashboard(body) {
  const times = body.traffic.map((bucket) => bucket.start);
  plot("chart-traffic", "Requests and texts", [
    { x: times, y: body.traffic.map((bucket) => bucket.requests), type: "bar", name: "requests" },
    { x: times, y: body.traffic.map((bucket) => bucket.texts), type: "scatter", mode: "lines", name: "texts" },
  ]);
  plot(
    "chart-classes",
    "Predicted class mix",
    body.classes.map((label) => ({ x: times, y: body.traffic.map((bucket) => bucket.class_mix[label]), type: "bar", name: label })),
    { barmode: "stack" },
  );
  plot("chart-latency", "Latency, ms (request logger's clock)", [
    { x: times, y: body.traffic.map((bucket) => bucket.latency_p50_ms), mode: "lines+markers", name: "p50" },
    { x: times, y: body.traffic.map((bucket) => bucket.latency_p99_ms), mode: "lines+markers", name: "p99" },
  ]);
  const checks = body.checks;
  const checkTimes = checks.map((check) => check.checked_at);
  const interval = checks.map((check) => check.estimated_accuracy_interval || [null, null]);
  plot(
    "chart-accuracy",
    "Accuracy: estimated without labels, and live",
    [
      { x: checkTimes, y: interval.map((bounds) => bounds[1]), mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
      { x: checkTimes, y: interval.map((bounds) => bounds[0]), mode: "lines", line: { width: 0 }, fill: "tonexty", name: "interval" },
      { x: checkTimes, y: checks.map((check) => check.estimated_accuracy), mode: "lines+markers", name: "estimated" },
      { x: checkTimes, y: checks.map((check) => check.live_accuracy), mode: "lines+markers", name: "live (feedback)" },
    ],
    { yaxis: { range: [0, 1] } },
  );
  const names = [...new Set(checks.flatMap((check) => Object.keys(check.scores || {})))].sort();
  const container = document.getElementById("chart-scores");
  container.replaceChildren(...names.map((name) => element("div", { id: `chart-score-${name}`, class: "chart", "data-testid": "chart-score" })));
  for (const name of names) {
    const held = checks.filter((check) => check.scores[name]);
    const id = `chart-score-${name}`;
    plot(id, name, [
      {
        x: held.map((check) => check.checked_at),
        y: held.map((check) => check.scores[name].score),
        customdata: held.map((check) => check.check_id),
        mode: "lines+markers",
        name: "score",
        marker: { color: held.map((check) => (check.scores[name].drifted ? "#b3261e" : "#457b9d")), size: 9 },
      },
      { x: held.map((check) => check.checked_at), y: held.map((check) => check.scores[name].threshold), mode: "lines+markers", marker: { size: 4 }, line: { dash: "dash" }, name: "threshold" },
    ]);
    document.getElementById(id).on("plotly_click", (event) => {
      const check = checks.find((candidate) => candidate.check_id === event.points[0].customdata);
      if (check) showCheck(check);
    });
  }
  if (checks.length) showCheck(checks[checks.length - 1]);
}

async function refreshDashboard() {
  const hours = document.getElementById("dashboard-hours").value;
  const { body } = await api(`/api/monitor/dashboard?hours=${hours}&buckets=48`);
  drawDashboard(body);
}

// ---- labelling: the monitor's queue, one text at a time, a class per key press ----

const QUEUE_BATCH = 20;
const queue = { items: [], classes: [], position: 0, labelled: 0, busy: false };

async function loadQueue() {
  showStatus("label-status", "finding the texts most worth labelling…");
  try {
    const { body } = await api(`/api/label/queue?size=${QUEUE_BATCH}`);
    Object.assign(queue, { items: body.items, classes: body.classes, position: 0 });
    showQueueItem();
  } catch (error) {
    showStatus("label-status", error.message, true);
  }
}

function showQueueItem() {
  const node = document.getElementById("label-item");
  const item = queue.items[queue.position];
  if (!item) {
    node.replaceChildren(element("p", { class: "empty", text: "nothing left to label in the latest window" }));
    showStatus("label-status", `${queue.labelled} labelled in this visit`);
    return;
  }
  const choices = queue.classes.map((label, number) => {
    const button = element("button", { type: "button", "data-testid": "label-choice", "data-label": label, text: `${number + 1} · ${label}` });
    button.addEventListener("click", () => submitLabel(label));
    return button;
  });
  node.replaceChildren(
    element("p", { class: "text", "data-testid": "label-text", text: item.text }),
    element("p", { class: "verdict" }, "The model said ", element("strong", { "data-testid": "label-predicted", text: item.predicted_label })),
    probabilityBars(queue.classes.map((label) => item.probabilities[label]), queue.classes),
    element("p", {
      class: "why",
      text: `chance it is wrong ${item.uncertainty.toFixed(2)} · unlike the training data ${item.novelty.toFixed(2)} · request ${item.request_id}, text ${item.index}`,
    }),
    element("div", { class: "choices" }, ...choices),
  );
  showStatus("label-status", `text ${queue.position + 1} of ${queue.items.length} · ${queue.labelled} labelled in this visit`);
}

async function nextItem() {
  queue.position += 1;
  if (queue.position >= queue.items.length) await loadQueue();
  else showQueueItem();
}

async function submitLabel(label) {
  const item = queue.items[queue.position];
  if (!item || queue.busy) return;
  queue.busy = true;
  try {
    await postJson("/api/label", { request_id: item.request_id, index: item.index, label });
    queue.labelled += 1;
    await nextItem();
  } catch (error) {
    // The text stays on screen: nothing is lost, the person can try again or skip it.
    showStatus("label-status", `not stored: ${error.message}`, true);
  } finally {
    queue.busy = false;
  }
}

function labelKeys(event) {
  if (document.getElementById("label").hidden || event.target.matches("input, textarea, select")) return;
  const number = Number.parseInt(event.key, 10);
  if (number >= 1 && number <= queue.classes.length) submitLabel(queue.classes[number - 1]);
  else if (event.key === "s" && !queue.busy) nextItem();
}

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== name;
  if (name === "monitor") refreshMonitor();
  if (name === "label") loadQueue();
}

document.getElementById("classify-form").addEventListener("submit", classify);
document.getElementById("refresh").addEventListener("click", refreshMonitor);
document.getElementById("dashboard-hours").addEventListener("change", refreshMonitor);
document.getElementById("label-skip").addEventListener("click", () => !queue.busy && nextItem());
document.addEventListener("keydown", labelKeys);
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
loadModel();
