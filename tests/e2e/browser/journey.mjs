// A user's journey through the MLflow 3.17 UI in headless Chromium (playwright-core).
//
// Reads a plan (JSON) on stdin, prints one JSON object a line:
//   {"event": "step", "step": NAME, "ok": true|false, "ms": N, "error": ...}
//   {"event": "http-error", "status": N, "method": M, "url": U, "body": EXCERPT}
// and exits non-zero when a step fails or the page received a status >= 400
// (other than the plan's `tolerated` [method, path, status] entries).
// Selectors are roles and visible text, as a user finds their way.
import { createRequire } from "node:module";
import path from "node:path";

const plan = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => resolve(text));
}));
const { chromium } = createRequire(path.join(plan.nodeModules, "/"))("playwright-core");
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const base = `${plan.origin}${plan.prefix}`;
const TIMEOUT = 30_000;

const browser = await chromium.launch({
  executablePath: plan.chromium,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    // The origin's host, and any other the journey crosses (the hub on the domain when
    // MLflow has a host of its own), all on the test's TLS listener.
    `--host-resolver-rules=${[new URL(plan.origin).hostname, ...(plan.otherHosts || [])]
      .map((host) => `MAP ${host} 127.0.0.1`).join(", ")}`,
  ],
});
// The self-signed certificate of the test's TLS listener is the only one it sees.
const context = await browser.newContext({
  ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 },
});
context.setDefaultTimeout(TIMEOUT);
const page = await context.newPage();

let httpErrors = 0;
const pending = [];
page.on("response", (response) => {
  const status = response.status();
  if (status < 400) return;
  const request = response.request();
  const url = new URL(response.url());
  const tolerated = (plan.tolerated || []).some(
    ([method, p, s]) => method === request.method() && p === url.pathname && s === status,
  );
  pending.push(response.text().catch(() => "").then((body) => {
    if (!tolerated) httpErrors += 1;
    emit({ event: "http-error", tolerated, status, method: request.method(),
           url: response.url(), body: body.slice(0, 500) });
  }));
});

// Requests that never got a response (reset, truncated, aborted): a page waiting on
// one shows nothing wrong by status, so they are reported like HTTP errors.
const inFlight = new Map();
page.on("request", (request) => inFlight.set(request, Date.now()));
page.on("requestfinished", (request) => inFlight.delete(request));
page.on("requestfailed", (request) => {
  inFlight.delete(request);
  emit({ event: "request-failed", method: request.method(), url: request.url(),
         failure: request.failure()?.errorText });
});

class Done extends Error {}

async function step(name, action) {
  if (plan.stopAfterDone) throw new Done();
  const started = Date.now();
  try {
    await action();
    emit({ event: "step", step: name, ok: true, ms: Date.now() - started });
    if (plan.stopAfter === name) plan.stopAfterDone = true;
  } catch (error) {
    const shot = path.join(plan.screenshots, `journey-failed-${name}.png`);
    await page.screenshot({ path: shot }).catch(() => {});
    const text = await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "");
    const waiting = [...inFlight].map(([r, since]) => `${r.method()} ${r.url()} (${Date.now() - since} ms)`);
    emit({ event: "step", step: name, ok: false, ms: Date.now() - started,
           error: String(error.message || error).split("\n").slice(0, 6).join("\n"),
           url: page.url(), screenshot: shot, page: text.slice(0, 1500), waiting });
    throw error;
  }
}

const hashIs = (fragment) => page.waitForFunction((f) => location.hash.includes(f), fragment);
const modal = (title) => page.getByRole("dialog", { name: title });

try {
  await step("login", async () => {
    // No session: nginx's forward-auth sends the browser to the login stand-in (Keycloak),
    // which returns to the UI; MLflow sends it through JupyterHub's OAuth (the hub logs
    // the Keycloak session in, no prompt) and sets its own session cookie.
    const response = await page.goto(base);
    if (!response.ok()) throw new Error(`UI answered ${response.status()}`);
    if (!page.url().startsWith(`${base}/`)) throw new Error(`ended at ${page.url()}`);
    const cookies = await context.cookies(`${base}/`);
    const session = cookies.find((c) => c.name === plan.sessionCookie);
    if (!session) throw new Error(`no ${plan.sessionCookie} cookie: ${JSON.stringify(cookies)}`);
    const scoped = session.path === plan.prefix && session.httpOnly && session.secure
      && session.sameSite === "Lax" && session.expires > Date.now() / 1000;
    if (!scoped) throw new Error(`session cookie not scoped to MLflow: ${JSON.stringify(session)}`);
    // Pages outside MLflow's route never receive it.
    const elsewhere = await context.cookies(`${plan.origin}/user/someone/`);
    if (elsewhere.some((c) => c.name === plan.sessionCookie)) throw new Error("sent outside the route");
  });

  await step("signed-in-as", async () => {
    // The UI asks the server who is signed in: the Keycloak user of the session.
    await page.getByText(plan.user, { exact: true }).first().waitFor();
  });

  await step("runs-table", async () => {
    await page.goto(`${base}/#/experiments/${plan.experimentId}/runs`);
    for (const name of [plan.trainedRun, plan.discardedRun]) {
      await page.getByRole("link", { name, exact: true }).waitFor();
    }
    await page.getByText(/2 matching runs/).waitFor();
    await page.screenshot({ path: path.join(plan.screenshots, "mlflow-runs-table.png") });
  });

  await step("run-page-metric-chart", async () => {
    await page.getByRole("link", { name: plan.trainedRun, exact: true }).click();
    await hashIs(`/runs/${plan.trainedRunId}`);
    await page.getByRole("heading", { name: plan.trainedRun }).waitFor();
    await page.getByRole("tab", { name: "Model metrics" }).click();
    // The chart of the metric's history: its legend and one marker a step.
    await page.getByText(`${plan.trainedRun} (${plan.metric})`).waitFor();
    const chart = page.locator(".js-plotly-plot").first();
    await chart.waitFor();
    const points = await chart.locator(".scatterlayer .point").count();
    if (points < plan.metricSteps) throw new Error(`chart shows ${points} points`);
    await page.screenshot({ path: path.join(plan.screenshots, "mlflow-run-page.png") });
  });

  await step("run-page-image-artifact", async () => {
    await page.getByRole("tab", { name: "Artifacts" }).click();
    const [folder, file] = plan.imageArtifact.split("/");
    await page.getByText(folder, { exact: true }).first().click();
    await page.getByText(file, { exact: true }).first().click();
    await page.getByText(`Path: `).first().waitFor();
    const image = page.locator("img[src^='blob:']").first();
    await image.waitFor();
    await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await image.elementHandle());
    await page.screenshot({ path: path.join(plan.screenshots, "mlflow-run-artifact.png") });
  });

  await step("register-model-version", async () => {
    await page.getByRole("tab", { name: "Overview" }).click();
    // The run's "Logged models" section links the model in this tab.
    await page.locator("a:not([target=_blank])", { hasText: plan.loggedModel }).first().click();
    await hashIs(`/models/${plan.modelId}`);
    await page.getByRole("button", { name: "Register model" }).click();
    const form = modal("Register model");
    await form.getByRole("combobox").click();
    await page.getByText("Create New Model", { exact: true }).click();
    await form.getByLabel("Model Name").fill(plan.registeredModel);
    const created = page.waitForResponse((r) => r.url().endsWith("/model-versions/create"));
    await form.getByRole("button", { name: "Register" }).click();
    const version = (await (await created).json()).model_version;
    if (version?.name !== plan.registeredModel) throw new Error(`created ${JSON.stringify(version)}`);
    await form.waitFor({ state: "hidden" });
  });

  await step("create-experiment", async () => {
    await page.goto(`${base}/#/experiments`);
    await page.getByRole("button", { name: "Create", exact: true }).click();
    const form = modal(/Create Experiment/i);
    await form.getByRole("textbox").first().fill(plan.newExperiment);
    const created = page.waitForResponse((r) => r.url().endsWith("/experiments/create"));
    await form.getByRole("button", { name: "Create" }).click();
    plan.newExperimentId = (await (await created).json()).experiment_id;
    await form.waitFor({ state: "hidden" });
    // The UI opens the new experiment.
    await hashIs(`/experiments/${plan.newExperimentId}`);
  });

  await step("rename-experiment", async () => {
    // A first visit shows a tip over the experiment's overview: dismiss it.
    await page.getByRole("button", { name: "Got it" }).click({ timeout: 10_000 }).catch(() => {});
    await page.getByRole("button", { name: "Open header dropdown menu" }).click();
    await page.getByRole("menuitem", { name: "Edit experiment" }).click();
    const form = modal(/Edit/i);
    await form.getByRole("textbox").first().fill(plan.renamedExperiment);
    const updated = page.waitForResponse((r) => r.url().endsWith("/experiments/update"));
    await form.getByRole("button", { name: "Save" }).click();
    if (!(await updated).ok()) throw new Error("experiments/update failed");
    await form.waitFor({ state: "hidden" });
    await page.getByRole("link", { name: plan.renamedExperiment }).first().waitFor();
  });

  await step("others-experiment-is-read-only", async () => {
    // Someone else's experiment: readable (default READ), its rename refused (403).
    await page.goto(`${base}/#/experiments/${plan.othersExperimentId}/runs`);
    await page.getByText(plan.othersRun, { exact: true }).first().waitFor();
    await page.getByRole("button", { name: "Got it" }).click({ timeout: 5_000 }).catch(() => {});
    await page.getByRole("button", { name: "Open header dropdown menu" }).click();
    await page.getByRole("menuitem", { name: "Edit experiment" }).click();
    const form = modal(/Edit/i);
    await form.getByRole("textbox").first().fill(`${plan.renamedExperiment}-not-mine`);
    const updated = page.waitForResponse((r) => r.url().endsWith("/experiments/update"));
    await form.getByRole("button", { name: "Save" }).click();
    const status = (await updated).status();
    if (status !== 403) throw new Error(`renaming another user's experiment answered ${status}`);
    await page.keyboard.press("Escape");
  });

  await step("delete-run", async () => {
    await page.goto(`${base}/#/experiments/${plan.experimentId}/runs`);
    const row = page.getByRole("row").filter({ hasText: plan.discardedRun });
    await row.getByRole("checkbox", { name: /row selection/ }).check();
    await page.getByRole("button", { name: "Delete" }).click();
    const confirm = page.getByRole("dialog").filter({ has: page.getByRole("button", { name: "Delete" }) });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await confirm.waitFor({ state: "hidden" });
    await page.getByRole("link", { name: plan.discardedRun, exact: true }).waitFor({ state: "detached" });
    await page.getByText(/1 matching runs?/).waitFor();
  });
} catch (error) {
  if (!(error instanceof Done)) process.exitCode = 1;
} finally {
  await Promise.all(pending);
  await browser.close();
}
if (httpErrors) process.exitCode = 1;
