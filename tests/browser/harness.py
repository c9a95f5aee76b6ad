"""Browser test harness: starts the built-in emulator and saasd on free loopback ports with
temporary directories, drives Debian's chromium headless through chromedriver (python3-selenium),
prints one TAP line per check ("ok - ..." / "not ok - ..."; tests/run-all.sh counts them) and
saves a screenshot of every step under $BUILD/screenshots/. Everything it started is stopped at
the end, whatever happened."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SAASD = os.path.join(BUILD, "saasd")
SHOTS = os.path.join(BUILD, "screenshots")
WINDOW = (1280, 900)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method, url, body=None, headers=None):
    """One JSON call; returns (status, parsed body or text). Never follows redirects."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def post_form(url, fields):
    """A form POST that does not follow the redirect: (status, Location or None)."""
    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, r.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location")


class Stack:
    """The emulator (playing Microsoft, Entra ID included) and saasd, wired to each other."""

    def __init__(self, config_extra="", rules=None):
        """rules: {file name: text} added to a copy of the repository's rules/."""
        self.tmp = tempfile.mkdtemp(prefix="saasd-browser-")
        self.rules = os.path.join(self.tmp, "rules")
        shutil.copytree(os.path.join(ROOT, "rules"), self.rules)
        for name, text in (rules or {}).items():
            with open(os.path.join(self.rules, name), "w") as f:
                f.write(text)
        self.emu_port, self.port, self.admin_port = free_port(), free_port(), free_port()
        self.emu = "http://127.0.0.1:%d" % self.emu_port
        self.base = "http://127.0.0.1:%d" % self.port
        self.admin = "http://127.0.0.1:%d" % self.admin_port
        self.procs = []
        self.config = os.path.join(self.tmp, "saasd.conf")
        with open(self.config, "w") as f:
            f.write(self.config_text() + config_extra)

    def config_text(self):
        return """
listen    = "127.0.0.1:%(port)d"
data_dir  = "%(tmp)s/data"
log_level = "info"
admin = { listen = "127.0.0.1:%(admin)d", key_file = "%(tmp)s/admin.key" }
entra = {
  authority = "%(emu)s", tenant_id = "11111111-1111-4111-8111-111111111111",
  client_id = "22222222-2222-4222-8222-222222222222",
  secret_file = "%(root)s/examples/emulator-client-secret", token_version = 2,
}
marketplace = { base_url = "%(emu)s" }
rules = { dir = "%(rules)s", http_allow = { "127.0.0.1" } }
reconcile = { interval = 0 }
metering = { interval = 0 }
""" % {"port": self.port, "admin": self.admin_port, "tmp": self.tmp, "emu": self.emu, "root": ROOT,
       "rules": self.rules}

    def start(self):
        log = open(os.path.join(self.tmp, "emulator.log"), "w")
        self.procs.append(subprocess.Popen(
            [SAASD, "emulate", "--port", str(self.emu_port), "--landing-url", self.base + "/landing",
             "--webhook-url", self.base + "/webhook", "--op-delay-ms", "200", "--ack-window-ms", "1000",
             "--webhook-backoff-ms", "200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        self.wait(self.emu + "/_emulator/health")
        log = open(os.path.join(self.tmp, "saasd.log"), "w")
        self.procs.append(subprocess.Popen([SAASD, "serve", "--config", self.config], stdout=log,
                                           stderr=subprocess.STDOUT, cwd=ROOT))
        self.wait(self.base + "/healthz")
        with open(os.path.join(self.tmp, "admin.key")) as f:
            self.admin_key = f.read().strip()
        return self

    def start_run(self):
        """`saasd run` with this stack's config (what `make run` does, on free ports): returns the
        landing URL it prints for a person to open."""
        out = open(os.path.join(self.tmp, "run.out"), "w+")
        self.procs.append(subprocess.Popen([SAASD, "run", "--config", self.config], stdout=out,
                                           stderr=open(os.path.join(self.tmp, "saasd.log"), "w"), cwd=ROOT))
        end = time.time() + 20
        while time.time() < end:
            out.seek(0)
            for line in out.read().splitlines():
                if line.strip().startswith(self.base + "/landing?token="):
                    with open(os.path.join(self.tmp, "admin.key")) as f:
                        self.admin_key = f.read().strip()
                    return line.strip()
            if self.procs[-1].poll() is not None:
                raise RuntimeError("saasd run exited with %s" % self.procs[-1].returncode)
            time.sleep(0.1)
        raise RuntimeError("saasd run printed no landing URL within 20 s")

    def wait(self, url, seconds=15):
        end = time.time() + seconds
        while time.time() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %s (logs in %s)" % (p.args[1], p.returncode, self.tmp))
            try:
                if http("GET", url)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s did not answer within %d s" % (url, seconds))

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("KEEP_TMP"):
            print("# logs kept in %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, name, lines=15):
        try:
            with open(os.path.join(self.tmp, name)) as f:
                return f.readlines()[-lines:]
        except OSError:
            return []

    # ---- the emulator's control API and saasd's admin API ----
    def ctl(self, method, path, body=None):
        return http(method, self.emu + path, body)

    def adm(self, method, path, body=None):
        return http(method, self.admin + path, body, {"Authorization": "Bearer " + self.admin_key})

    def purchase(self, **kw):
        status, p = self.ctl("POST", "/_emulator/purchases", kw)
        assert status == 201, "purchase failed: %s %s" % (status, p)
        return p

    def calls(self, method, glob):
        return self.ctl("GET", "/_emulator/calls?method=%s&path=%s" % (method, glob))[1]["calls"]


def node_lost(e):
    """True when chromium says the node an exception is about is no longer in the document: stale,
    or, while a new page loads, "does not belong to the document" (a plain WebDriverException)."""
    from selenium.common.exceptions import StaleElementReferenceException
    return isinstance(e, StaleElementReferenceException) or "does not belong to the document" in str(e)


def retry_dom(fn, tries=5):
    """Run fn, again after a short pause when chromium reports the node it was given is no
    longer in the document (a page still being replaced): a race of the driver, not a finding."""
    from selenium.common.exceptions import WebDriverException
    for attempt in range(tries):
        try:
            return fn()
        except WebDriverException as e:  # StaleElementReferenceException is one
            if not node_lost(e) or attempt == tries - 1:
                raise
            time.sleep(0.2)


def page_left(old):
    """A wait condition: the page whose <html> element is old has been replaced. Chromium reports
    a node of a replaced document either as stale or, while the new one loads, as "does not belong
    to the document"; both mean the page is gone (selenium's staleness_of knows only the first)."""
    from selenium.common.exceptions import WebDriverException

    def gone(_driver):
        try:
            old.is_enabled()
            return False
        except WebDriverException as e:
            if node_lost(e):
                return True
            raise
    return gone


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=%d,%d" % WINDOW, "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.binary_location = "/usr/lib/chromium/chromium"
    try:
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    except Exception:  # noqa: BLE001 - a loaded machine can miss chromedriver's start-up window once
        time.sleep(2)
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_window_size(*WINDOW)
    d.set_page_load_timeout(60)
    return d


class Run:
    """TAP output and screenshots for one run."""

    def __init__(self):
        self.failed = 0
        self.passed = 0
        shutil.rmtree(SHOTS, ignore_errors=True)
        os.makedirs(SHOTS)
        self.driver = None

    def shot(self, name):
        """The whole page (not only the 1280x900 window's viewport), as a person would scroll it."""
        path = os.path.join(SHOTS, name + ".png")
        d = self.driver
        try:
            height = d.execute_script("return Math.max(document.documentElement.scrollHeight, "
                                      "document.body ? document.body.scrollHeight : 0, window.innerHeight)")
            width = d.execute_script("return document.documentElement.clientWidth")
            png = d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
            with open(path, "wb") as f:
                f.write(base64.b64decode(png["data"]))
        except Exception:  # noqa: BLE001 - a plain viewport screenshot is still worth having
            d.save_screenshot(path)
        return path

    def click_and_wait(self, element, seconds=30):
        """Click, then wait until the browser has left the page (a form post or a link).
        element: a found element, or a function that finds it (then a node chromium lost while
        the page settled is looked up again instead of failing the case)."""
        from selenium.webdriver.support.ui import WebDriverWait
        from selenium.webdriver.common.by import By
        old = self.driver.find_element(By.TAG_NAME, "html")
        if callable(element):
            from selenium.common.exceptions import NoSuchElementException
            tries = []

            def click():
                tries.append(1)
                try:
                    element().click()
                except NoSuchElementException:
                    # A click can reach the page and chromium still report its node lost (the
                    # page is already being replaced): the retry then finds the next page, with
                    # no such node. That click is done; failing the case for it would be wrong.
                    if len(tries) > 1 and page_left(old)(self.driver):
                        return
                    raise
            retry_dom(click)
        else:
            element.click()
        WebDriverWait(self.driver, seconds).until(page_left(old))
        WebDriverWait(self.driver, seconds).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def check(self, cond, name, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            print("not ok - %s%s" % (name, ("  (" + detail + ")") if detail else ""), flush=True)
        return cond

    def case(self, fn, stack):
        """Runs one test function; an exception is one failed check naming where it happened."""
        started = time.time()
        try:
            fn(self, stack)
            print("# %s: %.1f s" % (fn.__name__, time.time() - started), flush=True)
        except Exception as e:  # noqa: BLE001 - any failure of a step is reported, not raised
            frames = traceback.extract_tb(e.__traceback__)
            here = os.path.dirname(os.path.abspath(__file__))
            # where it happened, and the last line of ours on the way there (selenium's is innermost)
            ours = [f for f in frames if os.path.dirname(os.path.abspath(f.filename)) == here]
            where = " ".join("%s:%d" % (os.path.basename(f.filename), f.lineno) for f in [frames[-1]] + ours[-2:])
            self.check(False, "%s runs to its end" % fn.__name__,
                       "%s: %s at %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "", where))
            if self.driver:
                try:
                    self.shot("failed-" + fn.__name__)
                except Exception:  # noqa: BLE001
                    pass
            for line in (stack.log_tail("saasd.log") + stack.log_tail("emulator.log")) if stack else []:
                print("#   " + line.rstrip())


def main(title, rules, cases, after_stop=(), config_extra=""):
    """One browser suite's run: start the emulator and saasd with rules ({file name: text}), then
    chromium; cases(t, stack) runs the cases, then the stack stops and each of after_stop runs
    with no stack (cases that start their own). config_extra is appended to saasd's config.
    Returns the exit status."""
    t = Run()
    started = time.time()
    stack = None
    try:
        stack = Stack(config_extra=config_extra, rules=rules).start()
        print("# emulator and saasd up: %.1f s" % (time.time() - started), flush=True)
        t.driver = browser()
        print("# chromium up: %.1f s" % (time.time() - started), flush=True)
        cases(t, stack)
        stack.stop()
        stack = None
        for case in after_stop:
            t.case(case, None)
    except Exception as e:  # noqa: BLE001 - set-up failures are one failed check
        t.check(False, "the %s starts the emulator, saasd and chromium" % title, "%s: %s" % (type(e).__name__, e))
    finally:
        if t.driver:
            t.driver.quit()
        if stack:
            stack.stop()
    print("# %ss: %d passed, %d failed in %.1f s; screenshots in %s"
          % (title, t.passed, t.failed, time.time() - started, SHOTS))
    return 1 if t.failed else 0
