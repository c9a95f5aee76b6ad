"""Browser tests (headless chromium, 1280x900): the buyer's way through the emulator's Entra
sign-in and saasd's landing page. Run by tests/run-all.sh; prints TAP lines; screenshots go to
$BUILD/screenshots/. Usage: /usr/bin/python3 tests/browser/run.py"""

import sys
import time
import urllib.parse

import harness

PUBLISHER_APP = "22222222-2222-4222-8222-222222222222"
ALEX = "customer@contoso-customer.example"


def authorize_url(stack, redirect_uri, state="browser-state"):
    q = urllib.parse.urlencode({
        "client_id": PUBLISHER_APP, "response_type": "code", "redirect_uri": redirect_uri,
        "response_mode": "query", "scope": "openid profile email", "state": state, "nonce": "browser-nonce",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    return "%s/organizations/oauth2/v2.0/authorize?%s" % (stack.emu, q)


def account_button(d, email):
    from selenium.webdriver.common.by import By
    return d.find_element(By.CSS_SELECTOR, 'button.account[data-email="%s"]' % email)


def emulator_signin_page(t, stack):
    """The emulator's sign-in page lists the test users; picking one returns to the app with a code."""
    from selenium.webdriver.common.by import By
    d = t.driver
    d.get(authorize_url(stack, stack.base + "/landing/callback"))
    t.shot("01-emulator-signin")
    emails = [b.get_attribute("data-email") for b in d.find_elements(By.CSS_SELECTOR, "button.account")]
    t.check(d.title == "Sign in to your account" and ALEX in emails and "robin@fabrikam.example" in emails
            and "pat.personal@outlook.example" in emails,
            "the emulator's sign-in page shows the test users, the purchaser among them", repr(emails))
    account_button(d, ALEX).click()
    url = urllib.parse.urlparse(d.current_url)
    q = urllib.parse.parse_qs(url.query)
    t.shot("02-back-at-redirect-uri")
    t.check(url.netloc == "127.0.0.1:%d" % stack.port and url.path == "/landing/callback" and q.get("code")
            and q.get("state") == ["browser-state"],
            "choosing the purchaser sends the browser to the redirect URI with a code and the state", d.current_url)


def emulator_signin_refusal(t, stack):
    """An unregistered redirect URI stops at Microsoft's error page: the browser never leaves it."""
    d = t.driver
    d.get(authorize_url(stack, "https://evil.example/callback"))
    t.shot("03-emulator-signin-wrong-redirect")
    t.check("AADSTS50011" in d.page_source and d.current_url.startswith(stack.emu),
            "a redirect URI not registered for the app shows AADSTS50011 at the emulator, no redirect")


def landing_page_today(t, stack):
    """Today's landing page (before the signed-in confirmation flow): it renders for a purchase."""
    from selenium.webdriver.common.by import By
    d = t.driver
    stack.ctl("POST", "/_emulator/offers", {"offerId": "seats-pro", "plans": [
        {"planId": "team", "displayName": "Team", "isPricePerSeat": True, "minQuantity": 1, "maxQuantity": 50}]})
    p = stack.purchase(offerId="seats-pro", planId="team", quantity=10)
    d.get(p["landingUrl"])
    t.shot("04-landing-page")
    h1 = d.find_elements(By.TAG_NAME, "h1")
    t.check(h1 and h1[0].text.strip() != "", "the landing page opened from the purchase's link renders a page",
            d.page_source[:200])


CASES = [emulator_signin_page, emulator_signin_refusal, landing_page_today]


def main():
    t = harness.Run()
    started = time.time()
    stack = None
    try:
        stack = harness.Stack().start()
        t.driver = harness.browser()
        for case in CASES:
            t.case(case, stack)
    except Exception as e:  # noqa: BLE001 - set-up failures are one failed check
        t.check(False, "the browser test starts the emulator, saasd and chromium", "%s: %s" % (type(e).__name__, e))
    finally:
        if t.driver:
            t.driver.quit()
        if stack:
            stack.stop()
    print("# browser tests: %d passed, %d failed in %.1f s; screenshots in %s"
          % (t.passed, t.failed, time.time() - started, harness.SHOTS))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
