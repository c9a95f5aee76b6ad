"""Browser tests (headless chromium, 1280x900): the buyer's way through the emulator's Entra
sign-in and saasd's landing page. Run by tests/run-all.sh; prints TAP lines; screenshots go to
$BUILD/screenshots/. Usage: /usr/bin/python3 tests/browser/run.py"""

import sys
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
    t.click_and_wait(account_button(d, ALEX))
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


# An offer of the test's own: per-seat, with a required extra field and a brand.
OFFER = "browser-suite"
OFFER_RULE = """
local rule = {}
rule.landing = {
  fields = {
    { name = "company", label = "Company name", required = true, max = 100 },
    { name = "region", label = "Data region", help = "Two capital letters, e.g. EU or US", pattern = "^[A-Z][A-Z]$" },
  },
  brand = { product = "Browser Suite", color = "#0b5cad", support = "support@browser-suite.example" },
}
function rule.provision(sub, ctx, landing)
  return { action = "activate",
           message = string.format("%d seats are ready for %s.", sub.quantity, landing.fields.company) }
end
return rule
"""


def buy(stack, quantity=5):
    stack.ctl("POST", "/_emulator/offers", {"offerId": OFFER, "plans": [
        {"planId": "team", "displayName": "Team plan", "isPricePerSeat": True, "minQuantity": 1,
         "maxQuantity": 50}]})
    return stack.purchase(offerId=OFFER, planId="team", quantity=quantity)


def activations(stack, sub_id):
    return [c for c in stack.calls("POST", "/api/saas/subscriptions/%s/activate" % sub_id) if c["status"] < 500]


def ms_status(stack, sub_id):
    return stack.ctl("GET", "/_emulator/subscriptions/" + sub_id)[1]["saasSubscriptionStatus"]


def text(d):
    from selenium.webdriver.common.by import By
    return harness.retry_dom(lambda: d.find_element(By.TAG_NAME, "body").text)


def sign_in_if_asked(t, stack, email, shot=None):
    """At the emulator's sign-in page: pick the user (the browser then comes back to saasd)."""
    d = t.driver
    if d.current_url.startswith(stack.emu) and "Pick an account" in d.page_source:
        if shot:
            t.shot(shot)
        t.click_and_wait(lambda: account_button(d, email))
        return True
    return False


def link_without_signin(t, stack):
    """A landing link opened but never signed in (a mail scanner, a closed tab) activates nothing."""
    d = t.driver
    d.delete_all_cookies()
    p = buy(stack)
    sub = p["subscriptionId"]
    status, _ = harness.http("GET", p["landingUrl"])  # a scanner's plain GET, no browser, no cookie
    d.get(p["landingUrl"])
    t.shot("10-link-opened-not-signed-in")
    at_signin = d.current_url.startswith(stack.emu) and "Pick an account" in d.page_source
    d.get(stack.base + "/landing/status")
    t.shot("11-status-without-session")
    refused = "sign in" in text(d).lower()
    forged, _ = harness.http("POST", stack.base + "/landing/confirm", None,
                             {"Content-Type": "application/x-www-form-urlencoded"})
    t.check(at_signin and refused and 400 <= forged < 500,
            "a landing link leads to sign-in; without it /landing/status asks to sign in and POST /landing/confirm "
            "is refused (%s)" % forged)
    t.check(ms_status(stack, sub) == "PendingFulfillmentStart" and not activations(stack, sub),
            "a landing link opened without sign-in (plain GET %s, browser) activates nothing at Microsoft" % status)


def purchase_to_active(t, stack):
    """Purchase -> landing -> sign-in -> confirmation -> refused empty field -> Confirm -> active ->
    reload without a second Activate -> Suspend -> "Manage account" shows suspended."""
    from selenium.webdriver.common.by import By
    d = t.driver
    d.delete_all_cookies()
    p = buy(stack, quantity=5)
    sub = p["subscriptionId"]
    d.get(p["landingUrl"])
    t.check(sign_in_if_asked(t, stack, ALEX, "20-signin"), "the landing link sends the buyer to Entra ID sign-in",
            d.current_url)

    t.shot("21-confirmation")
    page = text(d)
    t.check(all(s in page for s in ("Browser Suite", "Team plan", "5", "Alex Buyer", ALEX))
            and "Confirm and activate" in page,
            "the confirmation page shows offer, plan, seats and the signed-in buyer", page[:300])
    t.check(ms_status(stack, sub) == "PendingFulfillmentStart" and not activations(stack, sub),
            "signing in and seeing the confirmation page activates nothing")

    # The browser would stop an empty required field itself; the server is the guard: drop the
    # browser's check and send the form as a tampered or script-less client would.
    d.execute_script("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    t.click_and_wait(d.find_element(By.CSS_SELECTOR, "form[action='/landing/confirm'] button[type=submit]"))
    t.shot("22-empty-field-refused")
    errors = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".error")]
    t.check(errors and any(e.strip() for e in errors) and ms_status(stack, sub) == "PendingFulfillmentStart"
            and not activations(stack, sub),
            "the required field left empty is refused with a message, and nothing is activated", repr(errors))

    d.find_element(By.ID, "f-company").send_keys("Contoso Customer Ltd")
    t.click_and_wait(d.find_element(By.CSS_SELECTOR, "form[action='/landing/confirm'] button[type=submit]"))
    t.shot("23-active")
    page = text(d)
    t.check("active" in page.lower() and "Contoso Customer Ltd" in page and ms_status(stack, sub) == "Subscribed"
            and len(activations(stack, sub)) == 1,
            "Confirm activates once and shows the active page with the rule's message", page[:300])

    d.refresh()
    t.shot("24-active-reloaded")
    page2 = text(d)
    t.check("active" in page2.lower() and len(activations(stack, sub)) == 1,
            "reloading shows the same page without a second Activate at Microsoft")

    status, op = stack.ctl("POST", "/_emulator/subscriptions/%s/suspend" % sub)
    assert status == 202, "suspend failed: %s %s" % (status, op)
    status, again = stack.ctl("POST", "/_emulator/subscriptions/%s/landing-token" % sub, {})
    d.get(again["landingUrl"])  # "Manage account" in the portal opens the landing page again
    sign_in_if_asked(t, stack, ALEX, "25-manage-account-signin")
    t.shot("26-manage-account-suspended")
    page = text(d)
    t.check("suspended" in page.lower() and len(activations(stack, sub)) == 1,
            '"Manage account" after a Suspend shows the subscription suspended', page[:300])
    t.click_and_wait(lambda: d.find_element(By.CSS_SELECTOR, "form[action='/landing/signout'] button[type=submit]"))
    t.shot("27-signed-out")
    signed_out = "signed out" in text(d).lower() and not d.get_cookie("saasd_session")
    d.get(stack.base + "/landing/status")
    t.check(signed_out and "sign in" in text(d).lower(),
            "the Sign out button deletes the session: the purchase page then asks to sign in again")


def other_tenant_note(t, stack):
    """A user of another tenant than the purchaser's sees the purchase with a visible note."""
    from selenium.webdriver.common.by import By
    d = t.driver
    d.delete_all_cookies()
    p = buy(stack)
    d.get(p["landingUrl"])
    sign_in_if_asked(t, stack, "robin@fabrikam.example", "40-signin-other-tenant")
    t.shot("41-confirmation-other-tenant")
    notes = [n.text for n in d.find_elements(By.CSS_SELECTOR, ".note")]
    t.check(any("another organisation" in n for n in notes) and "Robin Other" in text(d)
            and not activations(stack, p["subscriptionId"]),
            "signed in from another tenant than the purchaser's, the confirmation page says so (and activates "
            "nothing)", repr(notes))


def signin_location(d, email):
    """Post the emulator's sign-in form for email ourselves and return where it sends the browser
    (the callback URL with code and state), so the test can open it twice."""
    from selenium.webdriver.common.by import By
    form = {i.get_attribute("name"): i.get_attribute("value")
            for i in d.find_elements(By.CSS_SELECTOR, "#signin input[type=hidden]")}
    form["user"] = account_button(d, email).get_attribute("value")
    status, location = harness.post_form(d.find_element(By.ID, "signin").get_attribute("action"), form)
    assert status == 302 and location, "the sign-in POST answered %s" % status
    return location


def refusals(t, stack):
    """What a browser can do wrong or have done to it: each refused with a page, nothing activated."""
    from selenium.webdriver.common.by import By
    d = t.driver
    d.delete_all_cookies()
    p = buy(stack)
    sub = p["subscriptionId"]
    d.get(p["landingUrl"])
    callback = signin_location(d, ALEX)
    d.get(callback)
    first = text(d)
    d.get(callback)  # the same code and state again: a replay
    t.shot("50-replayed-state")
    t.check("Confirm and activate" in first and "already used" in text(d) and not activations(stack, sub),
            "opening the sign-in answer (code and state) a second time is refused; nothing activated", text(d)[:200])

    d.get(stack.base + "/landing/status")
    session = d.get_cookie("saasd_session")
    assert session, "no session cookie after sign-in"
    forged = session["value"][:-2] + ("AA" if not session["value"].endswith("AA") else "BB")
    d.delete_cookie("saasd_session")
    d.add_cookie({"name": "saasd_session", "value": forged, "path": session.get("path", "/landing"),
                  "secure": session.get("secure", False), "httpOnly": True})
    held = d.get_cookie("saasd_session")
    assert held and held["value"] == forged, "the browser did not take the forged cookie"
    d.get(stack.base + "/landing/status")
    t.shot("51-session-cookie-bad-mac")
    t.check("Confirm and activate" not in text(d) and "sign in" in text(d).lower() and not activations(stack, sub),
            "a session cookie with a bad MAC is refused with a page that says to sign in again; nothing activated",
            text(d)[:200])

    faults = (("wrong-nonce", "with a nonce this sign-in never sent"), ("foreign-issuer", "from a foreign issuer"),
              ("expired", "that has expired"))
    for n, (fault, what) in enumerate(faults):
        stack.ctl("PUT", "/_emulator/config", {"idTokenFault": fault})
        try:
            d.delete_all_cookies()
            p = buy(stack)
            d.get(p["landingUrl"])
            sign_in_if_asked(t, stack, ALEX)
            t.shot("%d-id-token-%s" % (52 + n, fault))
            page = text(d)
            t.check("could not verify your sign-in" in page and "Confirm and activate" not in page
                    and not activations(stack, p["subscriptionId"]),
                    "an ID token %s is refused with a page; nothing activated" % what, page[:200])
        finally:
            stack.ctl("PUT", "/_emulator/config", {"idTokenFault": None})


CASES = [emulator_signin_page, emulator_signin_refusal, link_without_signin, purchase_to_active, other_tenant_note,
         refusals]


def make_run_url(t, _stack):
    """The URL `make run` prints walks the whole flow in a browser (example config and rules)."""
    from selenium.webdriver.common.by import By
    stack = harness.Stack()
    try:
        url = stack.start_run()
        d = t.driver
        d.delete_all_cookies()
        d.get(url)
        sign_in_if_asked(t, stack, ALEX)
        t.shot("30-make-run-confirmation")
        for field in d.find_elements(By.CSS_SELECTOR, "form[action='/landing/confirm'] input[required]"):
            field.send_keys("Contoso Customer Ltd")
        t.click_and_wait(d.find_element(By.CSS_SELECTOR, "form[action='/landing/confirm'] button[type=submit]"))
        t.shot("31-make-run-active")
        subs = stack.ctl("GET", "/_emulator/subscriptions")[1]["subscriptions"]
        t.check("active" in text(d).lower() and [s["saasSubscriptionStatus"] for s in subs] == ["Subscribed"],
                "the landing URL `make run` prints leads through sign-in and Confirm to an active subscription",
                text(d)[:200])
    finally:
        stack.stop()


def run_cases(t, stack):
    for case in CASES:
        t.case(case, stack)


def main():
    return harness.main("browser test", {OFFER + ".lua": OFFER_RULE}, run_cases, after_stop=[make_run_url])


if __name__ == "__main__":
    sys.exit(main())
