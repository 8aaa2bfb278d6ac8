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

function probabilityBars(probabilities) {
  const list = element("div", { class: "bars" });
  state.labels.forEach((label, column) => {
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

function quality(body) {
  const rows = Object.entries(body).filter(([, value]) => value === null || typeof value !== "object");
  const perClass = Object.entries(body).filter(([, value]) => value !== null && typeof value === "object");
  const list = element("dl", {});
  for (const [name, value] of [...rows, ...perClass]) {
    const shown = typeof value === "number" ? (Number.isInteger(value) ? value : value.toFixed(4)) : value;
    list.append(element("dt", { text: name }), element("dd", { text: typeof shown === "object" ? JSON.stringify(shown) : String(shown) }));
  }
  return list;
}

async function refreshMonitor() {
  showStatus("monitor-status", "loading…");
  try {
    const [qualityAnswer, checks, retraining, reports] = await Promise.all(
      ["quality", "checks", "retraining", "reports"].map((what) => api(`/api/monitor/${what}`).then((answer) => answer.body)),
    );
    document.getElementById("quality").replaceChildren(quality(qualityAnswer));
    document.getElementById("checks").replaceChildren(
      table(checks, [
        ["when", (check) => check.checked_at],
        ["version", (check) => String(check.model_version)],
        ["decision", (check) => element("span", { class: `decision ${check.decision}`, "data-testid": "decision", text: check.decision })],
        ["scores against thresholds", (check) => scoreList(check.scores)],
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

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== name;
  if (name === "monitor") refreshMonitor();
}

document.getElementById("classify-form").addEventListener("submit", classify);
document.getElementById("refresh").addEventListener("click", refreshMonitor);
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
loadModel();
