"""Drives the web console in headless Chromium (Debian's chromium and chromedriver, through
Selenium's WebDriver client; nothing is downloaded), as a tenant and as the operator, and writes
screenshots of the main pages. Prints a JSON report; any failed check raises (a non-zero exit).

Environment: BASE_URL, ADMIN_KEY, TENANT_KEY, TENANT_ID, REST_EMAIL_ID, SMTP_EMAIL_ID,
OTHER_EMAIL_ID (another tenant's), TEMPLATE_ID, WEBHOOK_ID, EVENT_ID, SCREENSHOTS (a folder).
"""

import json
import os
import shutil
import sys

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ENV = os.environ
BASE = ENV["BASE_URL"]
SHOTS = ENV["SCREENSHOTS"]
XSS = "<script>alert(1)</script>"


def which(*names):
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(f"none of {names} is installed")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = which("chromium", "chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(arg)
    service = Service(executable_path=which("chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def no_alert(driver):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"a script ran: alert {text!r}")


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def sign_in(driver, key, screenshot=None):
    driver.get(f"{BASE}/console")
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "key")))
    check(driver.current_url.endswith("/console/login"), f"not at sign-in: {driver.current_url}")
    if screenshot:
        shot(driver, screenshot)
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "sign-out")))


def sign_out(driver):
    driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "key")))
    # The session is over on the server: a page of it leads back to the sign-in form.
    driver.get(f"{BASE}/console/emails")
    check(driver.current_url.endswith("/console/login"), "signed out, yet a page opened")


def tenant(driver, report):
    sign_in(driver, ENV["TENANT_KEY"], screenshot="login")
    check(driver.current_url.endswith("/console/emails"), driver.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#emails tbody tr[data-email]")
    ids = {row.get_attribute("data-email") for row in rows}
    check(ENV["REST_EMAIL_ID"] in ids and ENV["SMTP_EMAIL_ID"] in ids, f"emails listed: {ids}")
    subjects = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#emails a.subject")]
    check(XSS in subjects, f"the XSS subject is shown as text: {subjects}")
    no_alert(driver)
    shot(driver, "emails")

    # Each email's timeline, one sent over REST and one over SMTP.
    for key in ("REST_EMAIL_ID", "SMTP_EMAIL_ID"):
        driver.get(f"{BASE}/console/emails/{ENV[key]}")
        events = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]
        check(any("email.delivered" in e and "250" in e for e in events), f"{key}: {events}")
        recipients = driver.find_element(By.ID, "recipients").text
        check("delivered" in recipients, recipients)
        no_alert(driver)
        if key == "SMTP_EMAIL_ID":
            check(driver.find_element(By.ID, "email-subject").text == "Nightly report over SMTP",
                  "the SMTP email's subject")
            shot(driver, "email")

    # Another tenant's email, by its id: not found.
    driver.get(f"{BASE}/console/emails/{ENV['OTHER_EMAIL_ID']}")
    message = driver.find_element(By.ID, "error-message").text
    check("not found" in message.lower(), message)
    check("Globex only" not in driver.page_source, "another tenant's subject leaked")

    # The template editor: typing changes the preview, rendered by the server.
    driver.get(f"{BASE}/console/templates/{ENV['TEMPLATE_ID']}")
    frame = driver.find_element(By.ID, "preview-html")
    check("Thanks, Ada" in frame.get_attribute("srcdoc"), frame.get_attribute("srcdoc"))
    html = driver.find_element(By.ID, "html")
    html.clear()
    html.send_keys("<h1>Hello again, {{name}}</h1><p>Total: {{total}}</p>")
    WebDriverWait(driver, 10).until(
        lambda d: "Hello again, Ada" in (d.find_element(By.ID, "preview-html").get_attribute("srcdoc") or "")
    )
    subject = driver.find_element(By.ID, "preview-subject").text
    check(subject == "Receipt for Ada", subject)
    shot(driver, "template")
    # A form whose CSRF token is taken out is refused, and publishes nothing.
    driver.execute_script(
        "document.querySelectorAll('input[name=_csrf]').forEach(e => e.remove());"
    )
    driver.find_element(By.ID, "publish").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "error-message")))
    check("403" in driver.find_element(By.TAG_NAME, "h1").text, driver.page_source[:400])
    driver.get(f"{BASE}/console/templates/{ENV['TEMPLATE_ID']}")
    check("never published" in driver.page_source, "publish went through without its token")

    # A webhook event with its attempts; replay queues a new event.
    driver.get(f"{BASE}/console/webhooks/{ENV['WEBHOOK_ID']}")
    check(driver.find_elements(By.CSS_SELECTOR, "#events tr[data-event]"), "no events listed")
    driver.get(f"{BASE}/console/webhooks/{ENV['WEBHOOK_ID']}/events/{ENV['EVENT_ID']}")
    attempts = driver.find_element(By.ID, "attempts").text
    check("200" in attempts, attempts)
    shot(driver, "webhook_event")
    before = driver.find_element(By.ID, "event-status").text
    check(before != "pending", f"the event was delivered before the replay: {before}")
    driver.find_element(By.ID, "replay").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "replayed")))
    after = driver.find_element(By.ID, "event-status").text
    check(after == "pending", f"replayed, the event waits for the dispatcher: {after}")
    report["replayed_event"] = driver.current_url.split("/events/", 1)[1].split("?", 1)[0]

    # Domains and the records to publish; usage.
    driver.get(f"{BASE}/console/domains")
    links = driver.find_elements(By.CSS_SELECTOR, "#domains a")
    check(links, "no domains listed")
    links[0].click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "records")))
    check("_domainkey" in driver.find_element(By.ID, "records").text, "no DKIM record shown")
    shot(driver, "domain")
    driver.get(f"{BASE}/console/usage")
    check(int(driver.find_element(By.ID, "month-emails").text) >= 2, "usage counts the emails")
    check(driver.find_elements(By.CSS_SELECTOR, "#usage-chart svg rect"), "usage chart has bars")
    shot(driver, "usage")

    # The operator's pages are not for a tenant session.
    driver.get(f"{BASE}/console/operator")
    check("403" in driver.find_element(By.TAG_NAME, "h1").text, "a tenant opened the operator page")
    driver.get(f"{BASE}/console/emails")
    sign_out(driver)


def operator(driver):
    sign_in(driver, ENV["ADMIN_KEY"])
    check(driver.current_url.endswith("/console/operator"), driver.current_url)
    row = driver.find_element(By.CSS_SELECTOR, f"#tenants tr[data-tenant='{ENV['TENANT_ID']}']")
    delivered = int(row.find_element(By.CSS_SELECTOR, "td.delivered").text)
    check(delivered >= 2, f"delivered in 24 h: {delivered}")
    check(row.find_elements(By.CSS_SELECTOR, "svg.spark"), "a sparkline per tenant")
    check(driver.find_elements(By.CSS_SELECTOR, "#rate-chart svg"), "the delivery-rate chart")
    shot(driver, "operator")
    row.find_element(By.TAG_NAME, "a").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "keys")))
    check(ENV["TENANT_KEY"] not in driver.page_source, "a key was shown whole")
    shot(driver, "operator_tenant")
    sign_out(driver)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    driver = browser()
    report = {}
    try:
        tenant(driver, report)
        operator(driver)
    except Exception:
        # Where the browser stood, for the failure's message.
        print(f"at {driver.current_url}:\n{driver.page_source[:3000]}", file=sys.stderr)
        raise
    finally:
        driver.quit()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
