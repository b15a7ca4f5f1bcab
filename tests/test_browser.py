"""The control panel in a real browser: JupyterLab 4 on 127.0.0.1 (a free port, a random token), a
notebook that shows a panel on the ci preset, opened in headless Chromium through selenium.

Runs the cell, checks the panel as drawn (the dropdowns show their value, no label is cut), clicks
Run and waits for "done", checks the live loss plot has a point per iteration; then saves, reloads
the page and runs again (the figure must survive the reload). Throughout: no error in the browser
console, no traceback in the server log, and nothing on the kernel's stderr and no error message
on its IOPub channel (where exceptions in widget message handlers go: they never reach a cell).

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/system_deps.sh`` installs them where
apt is available) and ``selenium`` (a dev extra). Without them the test skips and says why; under
CI (``$CI`` set) it fails instead.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ITERATIONS = 4
PANEL_CELL = f"""from ditto2_nb import ControlPanel

panel = ControlPanel("ci", "cpu", control="melody", live_every=1, iterations={ITERATIONS},
                     snapshot_every=0)
panel"""
RUN_BUTTON = "//button[contains(@class, 'jupyter-button') and normalize-space() = 'Run']"
# The page's widget manager opens a "jupyter.widget.control" comm (dashed uuid: made by the front end;
# the kernel's widgets have plain hex ids) and closes it again: the kernel may log "No such comm" for
# it, harmless (jupyter-widgets/ipywidgets#3525). Anything about the panel's own comms still counts.
HANDSHAKE = re.compile(r"No such comm: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run under CI, but {reason}", pytrace=False)
    print(f"test_browser skipped: {reason}")
    pytest.skip(reason)


def _browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or skip (fail under CI) saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None)
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver (chromedriver)", driver))
               if path is None]
    if missing:
        _unavailable(f"{' and '.join(missing)} not found; install with `apt-get install chromium "
                     "chromium-driver` (scripts/system_deps.sh does it as root)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Lab:
    """A JupyterLab server in its own process group, its log, and a listener on the kernel."""

    def __init__(self, root: Path):
        self.root, self.log_path = root, root / "server.log"
        self.token = secrets.token_hex(24)
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(PANEL_CELL)]
        nbformat.write(nb, str(root / "panel.ipynb"))
        settings = root / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)  # no news or update toasts over the panel
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.env = {**os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_DATA_DIR": str(root / "data"),
                    "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
                    "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces")}
        self.proc, self.messages, self._stop = None, [], threading.Event()
        self._listener: threading.Thread | None = None

    def start(self, timeout: float = 90.0) -> None:
        for _ in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                     f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                     f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                     "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True"],
                    stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                    start_new_session=True)
            t0 = time.monotonic()
            while self.proc.poll() is None and time.monotonic() - t0 < timeout:
                try:
                    _get(self.api("status"))
                    return
                except OSError:
                    time.sleep(0.3)
            self._kill()
        raise RuntimeError(f"JupyterLab did not start; its log:\n{self.log()[-3000:]}")

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/api/{path}?token={self.token}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def listen_to_kernel(self, timeout: float = 60.0) -> None:
        """Subscribe to the notebook's kernel's IOPub channel and keep every message."""
        from jupyter_client import BlockingKernelClient

        t0 = time.monotonic()
        while True:
            sessions = [s for s in _get(self.api("sessions")) if s["path"].endswith("panel.ipynb")]
            runtime = Path(self.env["JUPYTER_RUNTIME_DIR"])
            conn = sessions and runtime / f"kernel-{sessions[0]['kernel']['id']}.json"
            if conn and conn.exists():
                break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("the notebook's kernel did not start")
            time.sleep(0.3)
        kc = BlockingKernelClient()
        kc.load_connection_file(str(conn))
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        while True:  # IOPub is PUB/SUB: ask for kernel info until its status messages arrive
            kc.kernel_info()
            try:
                self.messages.append(kc.get_iopub_msg(timeout=2))
                break
            except queue.Empty:
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError("no message from the kernel's IOPub channel") from None

        def listen():
            while not self._stop.is_set():
                try:
                    self.messages.append(kc.get_iopub_msg(timeout=0.2))
                except queue.Empty:
                    pass
            kc.stop_channels()

        self._listener = threading.Thread(target=listen, daemon=True)
        self._listener.start()

    def kernel_problems(self) -> list[str]:
        """What the kernel published on stderr or as errors (tracebacks from comm handlers land
        here): any error or traceback at all, and any stderr output once the panel's cell ran
        (before it, the kernel's start-up and the page's handshake are not the panel's)."""
        out, ran = [], False
        for m in list(self.messages):
            kind, c = m["header"]["msg_type"], m["content"]
            ran = ran or kind == "execute_input"
            during = f" (handling {m['parent_header'].get('msg_type', 'nothing')})"
            if kind == "error":
                out.append(f"{c['ename']}: {c['evalue']}{during}")
            elif kind == "stream" and c.get("name") == "stderr":
                for line in c["text"].splitlines():
                    if not line.strip() or HANDSHAKE.match(line):
                        continue
                    if ran or "Traceback" in line or "Error" in line:
                        out.append(line + during)
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(5)
        self._kill()

    def _kill(self) -> None:
        """Stop the server's process group; on SIGTERM it shuts its kernels down. Kernels run in
        sessions of their own, so any left over (the server killed) are found by their connection
        file in this server's runtime folder and killed by pid."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        runtime = self.env["JUPYTER_RUNTIME_DIR"].encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if runtime in cmdline.read_bytes():
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.fixture(scope="module")
def browser_paths():
    return _browser()


@pytest.fixture(scope="module")
def lab(browser_paths, tmp_path_factory):
    from ditto2_nb import ControlPanel

    # Train/load the ci models and held-out clips into the session's cache (the kernel inherits
    # $DITTO2_CACHE), so that the run in the browser only loads them.
    ControlPanel("ci", "cpu", control="melody", iterations=1, snapshot_every=0).run()
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver(browser_paths, lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={lab.root / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(chromedriver, log_output=str(lab.root / "chromedriver.log")),
                         options=opts)
    d.set_script_timeout(30)
    try:
        yield d
    finally:
        d.quit()


def _wait(what: str, predicate, timeout: float, driver=None, lab=None):
    t0, value = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    where = ""
    if driver is not None and lab is not None:
        shot = lab.root / f"timeout-{what.replace(' ', '_')}.png"
        driver.save_screenshot(str(shot))
        where = f" (screenshot {shot}; server log {lab.log_path})"
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last seen: {value!r}){where}")


# The live figure (the FigureWidget whose first subplot is "control loss"): its traces as drawn.
LIVE_FIGURE_JS = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
    g => g.layout && (g.layout.annotations || []).some(a => a.text === 'control loss'));
if (plots.length !== 1) return null;
return plots[0].data.map(t => ({type: t.type, points: (t.y || []).length, xaxis: t.xaxis || 'x'}));
"""
# Watch the panel's status line, keeping every text it shows (a run can be over between polls).
WATCH_STATUS_JS = """
const button = document.evaluate(arguments[0], document, null, 9, null).singleNodeValue;
const status = button.closest('.widget-hbox').querySelector('.widget-html-content');
window.__panelStatus = [status.textContent];
new MutationObserver(() => window.__panelStatus.push(status.textContent)).observe(
    status, {childList: true, subtree: true, characterData: true});
"""
# Every description label of the panel: its text, and whether it is cut (wider than its box).
LABELS_JS = """
return Array.from(document.querySelectorAll('.jp-OutputArea .widget-label'))
    .filter(l => l.offsetParent !== null && l.textContent.trim())
    .map(l => ({text: l.textContent, cut: l.scrollWidth > l.clientWidth + 1}));
"""
SELECTS_JS = """
return Array.from(document.querySelectorAll('.jp-OutputArea .widget-dropdown')).map(d => {
    const s = d.querySelector('select');
    const label = d.querySelector('.widget-label');
    const shown = s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : '';
    return {name: label ? label.textContent : '', shown: shown.replace(/\u00a0/g, ' ')};  // nbsp
});
"""


# anywidget (which plotly's FigureWidget is built on) gives a model 2 s to initialise and then gives up
# (AbortSignal.timeout(2000) in its front end): on a loaded machine, restoring every widget at once
# after a reload can take longer, and the page then shows "model not found". That is anywidget's
# limit, not the panel's state, so such a reload is retried (at most twice, and said so).
ANYWIDGET_GAVE_UP = "[anywidget] Failed to initialize model."
GAVE_UP_ECHO = "widget model not found"


def _reload_until_figure(driver, lab, held: list, tries: int = 3, timeout: float = 60.0):
    for attempt in range(1, tries + 1):
        driver.refresh()
        t0, seen = time.monotonic(), []
        while time.monotonic() - t0 < timeout:
            figure = driver.execute_script(LIVE_FIGURE_JS)
            if figure:
                held += seen
                return figure
            seen += driver.get_log("browser")
            if any(ANYWIDGET_GAVE_UP in e["message"] for e in seen) and attempt < tries:
                print(f"reload {attempt}: anywidget gave up initialising a model (its 2 s limit); "
                      "reloading again")
                held += [e for e in seen if ANYWIDGET_GAVE_UP not in e["message"]
                         and GAVE_UP_ECHO not in e["message"]]
                break
            time.sleep(0.3)
        else:
            held += seen
            break
    return _wait("the live figure with its traces after a reload",
                 lambda: driver.execute_script(LIVE_FIGURE_JS), 1, driver, lab)


def _click_run_and_wait(driver, lab, timeout: float = 120.0) -> str:
    from selenium.webdriver.common.by import By

    button = _wait("the Run button", lambda: driver.find_elements(By.XPATH, RUN_BUTTON), 60, driver, lab)[0]
    driver.execute_script(WATCH_STATUS_JS, RUN_BUTTON)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()

    def finished():
        seen = driver.execute_script("return window.__panelStatus;")
        started = next((i for i, s in enumerate(seen) if not s.startswith("done")), None)
        if started is not None:
            return next((s for s in seen[started:] if s.startswith("done") or "Error" in s), None)
        return None

    return _wait("the run to finish", finished, timeout, driver, lab)


def _check_logs(driver, lab, when: str, held: list | None = None) -> None:
    console = [e for e in (held or []) + driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert console == [], f"browser console errors {when}: {console}"
    assert "Traceback" not in lab.log(), f"traceback in the server log {when}:\n{lab.log()[-4000:]}"
    assert lab.kernel_problems() == [], f"kernel errors {when}: {lab.kernel_problems()}"


def test_the_panel_runs_in_jupyterlab_and_survives_a_reload(lab, driver):
    from selenium.webdriver.common.by import By

    t0 = time.monotonic()
    driver.get(lab.url("lab/tree/panel.ipynb"))
    _wait("JupyterLab to load", lambda: driver.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.context"
        " && window.jupyterapp.shell.currentWidget.context.path.endsWith('panel.ipynb'));"), 90, driver, lab)
    lab.listen_to_kernel()
    _wait("the kernel to be idle", lambda: driver.execute_script(
        "const s = window.jupyterapp.shell.currentWidget.sessionContext;"
        " return !!(s && s.session && s.session.kernel && s.session.kernel.status === 'idle');"),
        60, driver, lab)
    driver.execute_script("return window.jupyterapp.commands.execute('notebook:run-all-cells');")

    # the panel rendered: its Run button, its dropdowns showing a value, no label cut, the live figure
    _wait("the panel", lambda: driver.find_elements(By.XPATH, RUN_BUTTON), 120, driver, lab)
    figure = _wait("the live figure", lambda: driver.execute_script(LIVE_FIGURE_JS), 30, driver, lab)
    assert figure == [{"type": "scatter", "points": 0, "xaxis": "x"}], figure
    selects = {s["name"]: s["shown"] for s in driver.execute_script(SELECTS_JS)}
    assert {"control", "method", "instrument"} <= set(selects), selects
    assert selects["instrument"] == "any (unconditional)" and selects["control"] == "melody", selects
    labels = driver.execute_script(LABELS_JS)
    assert {"snapshot_every", "decode_steps", "iterations"} <= {x["text"] for x in labels}, labels
    assert [x["text"] for x in labels if x["cut"]] == [], labels

    # Run: the status reaches "done", the loss plot has a point per iteration, the view is drawn
    status = _click_run_and_wait(driver, lab)
    assert status.startswith("done: DITTO-2 (CTM)") and f"{ITERATIONS} iterations" in status, status
    figure = driver.execute_script(LIVE_FIGURE_JS)
    assert figure[0] == {"type": "scatter", "points": ITERATIONS, "xaxis": "x"}, figure
    assert [t["type"] for t in figure[1:]] == ["heatmap", "scatter"], figure  # chroma, target melody
    assert all(t["xaxis"] == "x2" for t in figure[1:]), figure
    time.sleep(1.0)  # let the front end's last trace deltas reach the kernel
    _check_logs(driver, lab, "after the first run")

    # save, reload the page: the figure keeps its traces, and the next run draws them again
    driver.execute_script("return window.jupyterapp.commands.execute('docmanager:save');")
    time.sleep(1.0)
    held = []  # console entries of the reload, kept for _check_logs
    figure = _reload_until_figure(driver, lab, held)
    assert [t["type"] for t in figure] == ["scatter", "heatmap", "scatter"], figure
    assert figure[0]["points"] == ITERATIONS, figure
    status = _click_run_and_wait(driver, lab)
    assert status.startswith("done:"), status
    figure = driver.execute_script(LIVE_FIGURE_JS)
    assert [t["type"] for t in figure] == ["scatter", "heatmap", "scatter"], figure
    assert figure[0]["points"] == ITERATIONS, figure
    time.sleep(1.0)
    _check_logs(driver, lab, "after a reload and a second run", held)
    print(f"browser session: {time.monotonic() - t0:.1f} s")
