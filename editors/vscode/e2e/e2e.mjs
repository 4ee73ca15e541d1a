// The extension in a real editor: drives code-server in headless Chromium, opens
// examples/digits_cnn.nn, and checks what a user sees against what the nnc CLI says:
// highlighting, the inlay hints of every layer line, a hover's formulas, a shape error in
// the Problems panel, and the Show summary and Show gradient IR commands. Started by run.sh.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";

const url = process.env.E2E_URL;
const workspace = process.env.E2E_WORKSPACE;
const nnc = process.env.E2E_NNC;
const screenshots = process.env.E2E_SCREENSHOTS;
const chromiumPath = process.env.E2E_CHROMIUM ?? "/usr/bin/chromium";
for (const [name, value] of Object.entries({ E2E_URL: url, E2E_WORKSPACE: workspace, E2E_NNC: nnc, E2E_SCREENSHOTS: screenshots })) {
  if (!value) throw new Error(`${name} is not set; start this through e2e/run.sh`);
}
mkdirSync(screenshots, { recursive: true });
const file = path.join(workspace, "examples", "digits_cnn.nn");

/** What `nnc summary` says of the file: the oracle the hints are checked against. */
const [report] = JSON.parse(execFileSync(nnc, ["summary", "--format", "json", file], { encoding: "utf8" }));
const grouped = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
/** The hint of a row as the server writes it: `[B, 8, 8, 8] · 80 params`. */
function expectedHint(row) {
  const shape = `[${row.output_shape.join(", ")}]`;
  const params = Number(row.params);
  return params === 0 ? shape : `${shape} · ${grouped(row.params)} ${params === 1 ? "param" : "params"}`;
}
const layerRows = report.rows.filter((row) => row.kind === "layer");
if (layerRows.length < 8) throw new Error(`digits_cnn.nn should have at least 8 layer lines, the summary lists ${layerRows.length}`);

const step = (message) => console.log(`e2e: ${message}`);
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const target = path.join(screenshots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: target });
  step(`screenshot ${target}`);
}

/** Waits until `check` returns a value that is not `undefined`, or fails with `what`. */
async function until(what, check, timeoutMs = 60_000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    try {
      last = await check();
      if (last !== undefined && last !== false) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
}

/** The editor's rendered lines, by line number, as the text a user reads (hints included). */
async function editorLines(page) {
  return page.$$eval(".editor-group-container.active .monaco-editor .view-line", (lines) =>
    lines
      .map((line) => ({ top: parseFloat(line.style.top), text: line.textContent.replace(/\u00a0/g, " ") }))
      .sort((a, b) => a.top - b.top)
      .map((line) => line.text),
  );
}

/** The text of each editor group, in the order they are laid out. */
async function groupTexts(page) {
  return page.$$eval(".editor-group-container", (groups) =>
    groups.map((group) =>
      [...group.querySelectorAll(".monaco-editor .view-line")]
        .map((line) => ({ top: parseFloat(line.style.top), text: line.textContent.replace(/\u00a0/g, " ") }))
        .sort((a, b) => a.top - b.top)
        .map((line) => line.text)
        .join("\n"),
    ),
  );
}

/** Puts the cursor on `line` of the active editor with Go to Line (Ctrl+G). */
async function goToLine(page, line) {
  await page.locator(".editor-group-container.active .monaco-editor textarea").first().focus();
  await page.keyboard.press("Control+G");
  await page.keyboard.type(String(line));
  await page.keyboard.press("Enter");
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await input.fill(`>${title}`);
  await until(`the command "${title}" in the palette`, async () => {
    const labels = await page.locator(".quick-input-list .monaco-list-row").allTextContents();
    return labels.some((label) => label.includes(title)) || undefined;
  });
  await page.keyboard.press("Enter");
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
const started = Date.now();
try {
  step(`opening ${url} on ${workspace}`);
  await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 120_000 });
  await until("the explorer", () => page.locator(".explorer-folders-view").isVisible());

  step("opening examples/digits_cnn.nn");
  await page.keyboard.press("Control+P");
  const quickOpen = page.locator(".quick-input-widget input");
  await quickOpen.waitFor({ state: "visible" });
  await quickOpen.fill("examples/digits_cnn.nn");
  await until("digits_cnn.nn in quick open", async () => {
    const rows = await page.locator(".quick-input-list .monaco-list-row").allTextContents();
    return rows.some((row) => row.includes("digits_cnn.nn")) || undefined;
  });
  await page.keyboard.press("Enter");
  await until("the editor on digits_cnn.nn", async () => (await editorLines(page)).some((line) => line.startsWith("model DigitsCnn")));

  step("checking the language mode and the server's state in the status bar");
  await until("the language mode nnc", async () => (await page.locator("#status\\.editor\\.mode").textContent())?.trim() === "nnc" || undefined);
  const serverStatus = await until("the status bar item saying the server runs", async () => {
    const label = await page.locator(".statusbar-item", { hasText: /^\s*nnc\s*$/ }).first().getAttribute("aria-label");
    return label && label.includes("nnc lsp is running") ? label : undefined;
  });
  step(`status bar: ${serverStatus}`);

  step("checking highlighting: keywords, layers and numbers get their own colours");
  // Tokens are coloured once the grammar has run, which may be after the text shows.
  let colours = {};
  await until("tokens of different colours", async () => {
    colours = await page.$$eval(".editor-group-container.active .view-line span span", (spans) => {
      const of = (text) => {
        const span = spans.find((s) => s.textContent === text);
        return span ? getComputedStyle(span).color : undefined;
      };
      return { model: of("model"), name: of("DigitsCnn"), conv2d: of("conv2d"), number: of("10"), paren: of("(") };
    });
    return Object.values(colours).every((colour) => colour !== undefined) && new Set(Object.values(colours)).size >= 4 ? true : undefined;
  }, 30_000).catch((error) => {
    throw new Error(`${error.message}; the colours are ${JSON.stringify(colours)}`);
  });
  step(`  colours: ${JSON.stringify(colours)}`);

  step("checking the inlay hints of every layer line against nnc summary");
  const lines = await until("the inlay hints", async () => {
    const rendered = await editorLines(page);
    return layerRows.every((row) => rendered[row.line - 1]?.includes(expectedHint(row))) ? rendered : undefined;
  });
  for (const row of layerRows) {
    const text = lines[row.line - 1];
    step(`  line ${row.line}: ${text.trim()}`);
    if (!text.includes(`${row.layer} ${expectedHint(row)}`) && !text.includes(`${row.layer}${expectedHint(row)}`)) {
      throw new Error(`line ${row.line} should read "${row.layer}" then "${expectedHint(row)}", it reads "${text}"`);
    }
  }
  const header = `[${report.input_shape.join(", ")}] → [${report.output_shape.join(", ")}]`;
  const total = layerRows.reduce((sum, row) => sum + Number(row.params), 0);
  const headerLine = lines.find((line) => line.startsWith("model DigitsCnn"));
  if (!headerLine.includes(`${header} · ${grouped(String(total))} params`)) {
    throw new Error(`the model's header should show "${header} · ${grouped(String(total))} params", it reads "${headerLine}"`);
  }
  // The lecture's figures for this model, so that an oracle that drifted is caught too.
  for (const figure of ["[B, 8, 8, 8] · 80 params", "[B, 16, 4, 4] · 1,168 params", "[B, 10] · 650 params", "1,898 params"]) {
    if (!lines.some((line) => line.includes(figure))) throw new Error(`no line shows ${figure}`);
  }
  await screenshot(page, "inlay-hints");

  step("checking the hover on conv2d shows its formulas");
  const conv = layerRows.find((row) => row.layer.startsWith("conv2d"));
  // Show hover (Ctrl+K Ctrl+I) with the cursor on `conv2d`, as a keyboard user would; the
  // mouse hover of a headless browser is less dependable.
  await goToLine(page, conv.line);
  await page.keyboard.press("Home");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("Control+K");
  await page.keyboard.press("Control+I");
  let lastHover = "";
  const hover = await until(
    "the hover with the formulas of conv2d",
    async () => {
      lastHover = (await page.locator(".monaco-hover:visible").allTextContents()).join("\n");
      return conv.formulas.every((formula) => lastHover.includes(formula)) ? lastHover : undefined;
    },
    30_000,
  ).catch((error) => {
    throw new Error(`${error.message}; the hover reads "${lastHover}", the formulas are ${JSON.stringify(conv.formulas)}`);
  });
  step(`  hover: ${hover.replace(/\s+/g, " ").slice(0, 160)}`);
  await screenshot(page, "hover-formula");
  await page.keyboard.press("Escape");

  step("introducing a shape error: reshape(1, 8, 8) becomes reshape(1, 8, 9)");
  const reshape = layerRows.find((row) => row.layer.startsWith("reshape"));
  await goToLine(page, reshape.line);
  await page.keyboard.press("End");
  // The cursor is after the hint-free line's last character, the closing parenthesis.
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("Backspace");
  await page.keyboard.type("9");
  let broken = "";
  await until("the edited line", async () => {
    broken = (await editorLines(page))[reshape.line - 1];
    return broken.includes("reshape(1, 8, 9)") || undefined;
  }, 10_000).catch(() => {
    throw new Error(`the edit went wrong: line ${reshape.line} reads "${broken}"`);
  });

  // The oracle: what `nnc check` says of the edited text.
  const { writeFileSync, readFileSync, rmSync } = await import("node:fs");
  const editedPath = path.join(path.dirname(file), ".edited-digits_cnn.nn");
  writeFileSync(editedPath, readFileSync(file, "utf8").replace("reshape(1, 8, 8)", "reshape(1, 8, 9)"));
  let expected;
  try {
    execFileSync(nnc, ["check", "--format", "json", editedPath], { encoding: "utf8" });
    throw new Error("nnc check accepted the edited file; the test's edit should be a shape error");
  } catch (error) {
    if (error.stdout === undefined) throw error;
    const found = JSON.parse(error.stdout);
    const diagnostics = Array.isArray(found) ? found : (found.diagnostics ?? []);
    expected = diagnostics.find((d) => d.severity === "error");
    if (!expected) throw new Error(`nnc check printed no error: ${error.stdout}`);
  } finally {
    rmSync(editedPath, { force: true });
  }
  step(`  nnc check says: [${expected.code}] ${expected.message}`);

  await page.keyboard.press("Control+Shift+M");
  const problem = await until("the error in the Problems panel", async () => {
    const rows = await page.locator(".markers-panel .monaco-list-row").allTextContents();
    return rows.find((row) => row.includes(expected.message));
  }, 30_000);
  step(`  Problems panel: ${problem.trim()}`);
  if (!problem.includes(expected.code)) throw new Error(`the problem should carry the code ${expected.code}: "${problem}"`);
  await until("the error squiggle", () => page.locator(".editor-group-container.active .squiggly-error").count().then((n) => n > 0 || undefined));
  const errorCount = await page.locator("#status\\.problems").getAttribute("aria-label");
  step(`  status bar: ${errorCount}`);
  await screenshot(page, "shape-error");

  step("mending the error: the Problems panel empties and the hints come back");
  await page.locator(".editor-group-container.active .view-line", { hasText: "reshape(1, 8, 9)" }).click();
  await page.keyboard.press("End");
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("Backspace");
  await page.keyboard.type("8");
  await until("no problems", async () => (await page.locator(".markers-panel .monaco-list-row").count()) === 0 || undefined, 30_000);
  await until("the hints again", async () => (await editorLines(page))[reshape.line - 1].includes(expectedHint(reshape)) || undefined);
  await page.keyboard.press("Control+S");

  step("running nnc: Show summary");
  await runCommand(page, "nnc: Show summary");
  const summaryText = await until("the summary in an editor beside the source", async () =>
    (await groupTexts(page)).find((text) => text.includes("Total params:") && text.includes(`${grouped(String(total))}`)),
  60_000);
  step(`  summary: ${summaryText.split("\n").find((line) => line.includes("Total params"))?.trim()}`);
  await until("the summary's tab", async () => (await page.locator(".tab", { hasText: "digits_cnn.summary.txt" }).count()) > 0 || undefined);
  await screenshot(page, "summary");

  step("running nnc: Show gradient IR");
  await page.locator(".editor-group-container .view-line", { hasText: "linear(classes)" }).first().click();
  await runCommand(page, "nnc: Show gradient IR");
  const irGroup = await until("the gradient IR in an editor beside the source", async () => {
    const texts = await groupTexts(page);
    const index = texts.findIndex((text) => text.includes("fn DigitsCnn_cross_entropy_grad("));
    return index >= 0 ? index : undefined;
  }, 60_000);
  await until("the gradient IR's tab", async () => (await page.locator(".tab", { hasText: "digits_cnn.DigitsCnn.grad.nnir" }).count()) > 0 || undefined);
  const irBefore = (await groupTexts(page))[irGroup];
  step(`  gradient IR: ${irBefore.split("\n")[0].slice(0, 100)}...`);
  // The output is read-only: typing into it changes nothing.
  await page.locator(".editor-group-container").nth(irGroup).locator(".view-line").first().click();
  await page.keyboard.type("typed");
  await page.waitForTimeout(500);
  const irAfter = (await groupTexts(page))[irGroup];
  if (irAfter !== irBefore) throw new Error("the gradient IR editor took typing; it should be read-only");
  await screenshot(page, "gradient-ir");

  step("running nnc: Run file, which trains the model in a terminal");
  await page.locator(".editor-group-container .view-line", { hasText: "linear(classes)" }).first().click();
  const weights = path.join(workspace, "examples", "cnn.safetensors");
  await runCommand(page, "nnc: Run file");
  await until("the trained weights, written by the run in the terminal", () => existsSync(weights) || undefined, 120_000);
  // The terminal draws on a canvas, so the run is checked by the files it writes.
  const metrics = path.join(workspace, "examples", "runs", "DigitsCnn", "metrics.csv");
  await until("the run's metrics", () => existsSync(metrics) || undefined, 60_000);
  step(`  the run wrote ${path.relative(workspace, weights)} and ${path.relative(workspace, metrics)}`);
  await screenshot(page, "run-file");

  step(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  await screenshot(page, "failure").catch(() => {});
  throw error;
} finally {
  await browser.close();
}
