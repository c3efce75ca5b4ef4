"""The dashboard: served by dockyardd under /dashboard/, opened through ``dockyard dashboard``'s
loopback forwarder (one-time token, session cookie, Host/Origin checks), and driven in headless
Chromium: a container started with ``docker run -d`` appears, its log is followed, its stats
draw a sparkline, and the Stop button (after a confirmation) stops it. Screenshots are saved
under the test's tmp dir; one is copied to /work/reports/dashboard.png."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import shutil
import subprocess
from typing import Any, Iterator

import pytest

from conftest import DOCKYARD, Daemon, roundtrip, running_daemon

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "core", "dashboard", "static")
REPORTS = "/work/reports"


@pytest.fixture(scope="module")
def dash_daemon(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as d:
        yield d


class Forwarder:
    """``dockyard dashboard --no-open`` running in the background; ``url`` is its one-time link."""

    def __init__(self, daemon: Daemon) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        self.proc = subprocess.Popen([DOCKYARD, "-H", daemon.host, "dashboard", "--no-open"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/\?token=\S+", line)
        if not m:
            self.close()
            raise AssertionError(f"no dashboard link printed: {line!r}")
        self.url, self.port = m.group(0), int(m.group(1))

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        return roundtrip(http.client.HTTPConnection("127.0.0.1", self.port, timeout=60), method,
                         path, body, headers)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def forwarder(dash_daemon: Daemon) -> Iterator[Forwarder]:
    f = Forwarder(dash_daemon)
    try:
        yield f
    finally:
        f.close()


def _listening_address(port: int) -> str:
    """The local address a TCP socket of this machine listens on ``port`` with."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                return ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
    return ""


def test_forwarder_token_cookie_host_and_origin(dash_daemon: Daemon, forwarder: Forwarder) -> None:
    f = forwarder
    assert _listening_address(f.port) == "127.0.0.1"
    assert f.request("GET", "/dashboard/")[0] == 403          # no session yet
    assert f.request("GET", "/containers/json")[0] == 403
    assert f.request("GET", "/dashboard/?token=wrong")[0] == 403
    path = f.url.split(str(f.port), 1)[1]
    status, headers, _ = f.request("GET", path)
    assert status == 303 and headers["location"] == "/dashboard/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert f.request("GET", path)[0] == 403                  # the link works once
    session = {"Cookie": cookie.split(";", 1)[0]}

    status, headers, page = f.request("GET", "/dashboard/", session)
    assert status == 200 and b"<title>dockyard</title>" in page
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    status, _, body = f.request("GET", "/containers/json?all=1", session)
    assert status == 200 and isinstance(json.loads(body), list)

    # another page cannot drive the API through the forwarder, nor a rebinding name reach it
    create = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    status, _, body = f.request("POST", "/containers/create?name=csrf-victim",
                                {**session, "Origin": "http://evil.example",
                                 "Content-Type": "application/json"}, create)
    assert status == 403 and b"cross-origin" in body
    assert dash_daemon.api.get("/containers/csrf-victim/json")[0] == 404
    assert f.request("GET", "/_ping", {**session, "Host": f"evil.example:{f.port}"})[0] == 403
    assert f.request("GET", "/_ping", {**session, "Upgrade": "tcp", "Connection": "Upgrade"})[0] == 400
    # its own origin may (the page's buttons)
    status, _, body = f.request("POST", "/containers/create?name=dash-same-origin",
                                {**session, "Origin": f"http://127.0.0.1:{f.port}",
                                 "Content-Type": "application/json"}, create)
    assert status == 201, body
    assert dash_daemon.api.delete("/containers/dash-same-origin?force=1")[0] == 204


def test_daemon_refuses_cross_origin_requests(dash_daemon: Daemon) -> None:
    api = dash_daemon.api
    body = {"Image": "busybox", "Cmd": ["true"]}
    status, err = api.post("/containers/create?name=xo-1", body, headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin request refused" in err["message"]
    status, err = api.post("/containers/create?name=xo-2", body, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert api.get("/containers/json", headers={"Origin": "null"})[0] == 403
    for name in ("xo-1", "xo-2"):
        assert api.get(f"/containers/{name}/json")[0] == 404
    # Docker clients send no Origin; a page of the daemon's own origin (Host: localhost) may
    status, made = api.post("/containers/create?name=xo-3", body, headers={"Origin": "http://localhost"})
    assert status == 201, made
    assert api.delete("/containers/xo-3?force=1")[0] == 204


def test_dashboard_files_and_bench_report(dash_daemon: Daemon) -> None:
    api = dash_daemon.api
    status, _ = api.get("/dashboard")
    assert status == 301
    status, js = api.get("/dashboard/static/app.js")
    assert status == 200 and b"/containers/json" in js
    assert api.get("/dashboard/static/..%2Fapp.js")[0] == 404
    assert api.get("/dashboard/static/__init__.py")[0] == 404
    status, err = api.get("/dashboard/bench/latest.html")
    report = os.path.join(dash_daemon.data_root, "bench", "latest.html")
    assert status == 404 and report in err["message"]
    os.makedirs(os.path.dirname(report), exist_ok=True)
    with open(report, "w") as f:
        f.write("<html><body><h1>bench: run --rm true 0.31x dockerd</h1></body></html>")
    try:
        conn_status, page = api.get("/dashboard/bench/latest.html")
        assert conn_status == 200 and b"0.31x dockerd" in page
    finally:
        shutil.rmtree(os.path.dirname(report))


def test_static_files_fetch_nothing_from_outside() -> None:
    """No CDN, no font service: the only URL in the page's files is SVG's namespace name."""
    for name in os.listdir(STATIC):
        with open(os.path.join(STATIC, name), encoding="utf-8") as f:
            text = f.read()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)


# ---- the browser -----------------------------------------------------------------------------

def _chrome(tmp: str) -> Any:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1440,900",
                f"--user-data-dir={tmp}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_dashboard_in_headless_chromium(dash_daemon: Daemon, forwarder: Forwarder, tmp_path: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never look for drivers online
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed (make test installs it)")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome(str(tmp_path / "chromium"))
    name = "dash-" + os.urandom(3).hex()
    shots = []

    def shot(label: str) -> str:
        path = str(tmp_path / f"dashboard-{label}.png")
        browser.save_screenshot(path)
        shots.append(path)
        return path

    def row() -> Any:
        found = browser.find_elements(By.CSS_SELECTOR, f'#containers tbody tr[data-name="{name}"]')
        return found[0] if found else None

    def points() -> int:
        r = row()
        svg = r.find_elements(By.CSS_SELECTOR, ".spark.cpu svg") if r else []
        return int(svg[0].get_attribute("data-points")) if svg else 0

    # the page redraws the table on every event: an element found may be replaced under us
    wait = WebDriverWait(browser, 90, poll_frequency=0.2,
                         ignored_exceptions=[StaleElementReferenceException])

    def text(element_id: str) -> str:
        """The element's text, read inside ``wait.until`` so a redraw is retried, not fatal."""
        return browser.find_element(By.ID, element_id).text

    def click(by: str, what: str) -> None:
        wait.until(lambda b: b.find_element(by, what).click() or True)

    def on_row(css: str | None, what: Any) -> Any:
        """Wait until ``what`` applied to the container's row (or an element in it, found
        afresh each time) is true."""
        def attempt(b: Any) -> Any:
            r = row()
            target = r.find_element(By.CSS_SELECTOR, css) if css else r
            return what(target)
        return wait.until(attempt)

    try:
        browser.get(forwarder.url)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert row() is None
        wait.until(lambda b: "live" in b.find_element(By.ID, "live").get_attribute("class").split())

        # a container started by the docker CLI appears without reloading the page
        # --network none: a veth appearing on the host makes Chromium abort the page's requests
        # in flight (net::ERR_NETWORK_CHANGED), which is the host's doing, not the page's
        run = subprocess.run([docker, "run", "-d", "--network", "none", "--name", name, "busybox", "sh", "-c",
                              'trap "exit 0" TERM; i=0; while true; do echo "tick $i"; j=0; '
                              'while [ $j -lt 3000 ]; do j=$((j+1)); done; i=$((i+1)); sleep 1; done'],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "DOCKER_HOST": dash_daemon.host})
        assert run.returncode == 0, run.stderr
        wait.until(lambda b: row() is not None and row().get_attribute("data-state") == "running")
        wait.until(lambda b: "start" in text("events") and name in text("events"))

        # its log, followed live, and its stats drawn as sparklines
        on_row(None, lambda r: r.click() or True)
        wait.until(lambda b: "tick 3" in b.find_element(By.ID, "logs").text)
        first = wait.until(lambda b: text("logs").count("tick"))
        wait.until(lambda b: text("logs").count("tick") > first)
        wait.until(lambda b: text("logs-state") == "following")
        wait.until(lambda b: points() >= 8)
        on_row(".spark.mem svg", lambda svg: int(svg.get_attribute("data-points")) > 0)
        running_png = shot("running")

        # Stop asks first, then stops it
        on_row('button[data-action="stop"]', lambda button: button.click() or True)
        wait.until(lambda b: b.find_element(By.ID, "confirm").is_displayed())
        wait.until(lambda b: name in text("confirm-title"))
        shot("confirm")
        click(By.ID, "confirm-ok")
        wait.until(lambda b: row() is not None and row().get_attribute("data-state") == "exited")
        status, c = dash_daemon.api.get(f"/containers/{name}/json")
        assert status == 200 and c["State"]["Running"] is False
        wait.until(lambda b: "the log ended" in b.find_element(By.ID, "logs").text)
        shot("stopped")

        # images with their layers, and the engine's drivers
        click(By.CSS_SELECTOR, '#tabs button[data-view="images"]')
        wait.until(lambda b: "busybox:latest" in text("images"))
        click(By.CSS_SELECTOR, "#images tbody tr")
        wait.until(lambda b: b.find_element(By.ID, "layers-panel").is_displayed())
        wait.until(lambda b: "layer" in text("layers-name"))
        shot("images")
        click(By.CSS_SELECTOR, '#tabs button[data-view="engine"]')
        info = dash_daemon.api.get("/info")[1]
        wait.until(lambda b: info["Driver"] in text("engine-cards")
                   and info["ExecutionDriver"] in text("engine-cards"))
        shot("engine")

        # nothing failed in the page, except the missing bench report it asks for
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and "/dashboard/bench/latest.html" not in e["message"]]
        assert not errors, errors
    finally:
        browser.quit()
        for path in shots:
            assert os.path.getsize(path) > 10_000
    with contextlib.suppress(OSError):  # for the lead to look at; not the test's business
        os.makedirs(REPORTS, exist_ok=True)
        shutil.copy(running_png, os.path.join(REPORTS, "dashboard.png"))
        for path in shots:
            shutil.copy(path, os.path.join(REPORTS, os.path.basename(path)))



# ---- over TCP with TLS -----------------------------------------------------------------------

def _pki(tmp: Any) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    p = {n: str(tmp / n) for n in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem",
                                   "client.key")}
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p["ca.key"], "-out", p["ca.pem"],
        "-days", "2", "-subj", "/CN=dockyard test CA")
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                     ("client", "extendedKeyUsage=clientAuth\n")):
        (tmp / f"{who}.ext").write_text(ext)
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p[f"{who}.key"], "-out",
            str(tmp / f"{who}.csr"), "-subj", f"/CN={who}")
        run("x509", "-req", "-in", str(tmp / f"{who}.csr"), "-CA", p["ca.pem"], "-CAkey", p["ca.key"],
            "-CAcreateserial", "-out", p[f"{who}.pem"], "-days", "2", "-extfile", str(tmp / f"{who}.ext"))
    return p


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl needed to make certificates")
def test_dashboard_over_tls_needs_a_client_certificate(tmp_path: Any) -> None:
    import ssl
    pki = _pki(tmp_path)
    port = _free_port()
    args = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", pki["ca.pem"],
            "--tlscert", pki["server.pem"], "--tlskey", pki["server.key"]]

    def get(ctx: ssl.SSLContext, method: str = "GET", path: str = "/dashboard/",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    with running_daemon(None, extra_args=args):
        anonymous = ssl.create_default_context(cafile=pki["ca.pem"])
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(anonymous)
        client = ssl.create_default_context(cafile=pki["ca.pem"])
        client.load_cert_chain(pki["client.pem"], pki["client.key"])
        status, page = get(client)
        assert status == 200 and b"<title>dockyard</title>" in page
        # the page's own origin passes the cross-origin check; another page's does not
        origin = f"https://127.0.0.1:{port}"
        assert get(client, "POST", "/containers/no-such/stop", {"Origin": origin})[0] == 404
        assert get(client, "POST", "/containers/no-such/stop", {"Origin": "https://evil.example"})[0] == 403
