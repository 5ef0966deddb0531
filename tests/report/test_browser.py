"""The report and the viewer in a real browser: Debian's headless Chromium driven by selenium through Debian's
chromedriver (its path given, so Selenium Manager downloads nothing; `make test` installs both). No console
error, the funnel's numbers are stats.json's, a dropped row's reason is shown, and a <script> inside a model
output is text on the page and never runs. Screenshots are kept in the test run's tmp folder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _report_run import SCRIPT
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from thinktoggle.report import write_report
from thinktoggle.report.server import make_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's chromium, chromium-driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def console_errors(driver: webdriver.Chrome) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(height, 8000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def funnel_cells(driver: webdriver.Chrome) -> dict[str, dict[str, int]]:
    cells = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#funnel-table tr[data-stage]"):
        numbers = row.find_elements(By.CSS_SELECTOR, "td[data-col]")
        cells[row.get_attribute("data-stage")] = {
            td.get_attribute("data-col"): int(td.text.replace(",", "")) for td in numbers
        }
    return cells


def expected_funnel(run: Path) -> dict[str, dict[str, int]]:
    stages = json.loads((run / "stats.json").read_text())["stages"]
    return {s["stage"]: {k: s[k] for k in ("in", "kept", "dropped", "failed")} for s in stages}


def assert_script_is_text(driver: webdriver.Chrome) -> None:
    assert driver.execute_script("return window.__pwned === undefined") is True
    assert "pwned" not in driver.title
    assert SCRIPT in driver.find_element(By.TAG_NAME, "body").text  # shown as the characters it is


def test_report_in_the_browser(browser: webdriver.Chrome, report_run: Path, tmp_path: Path):
    page = write_report(report_run)
    browser.get(page.as_uri())
    assert funnel_cells(browser) == expected_funnel(report_run)
    dropped = browser.find_element(By.ID, "reason-filter-dropped-think_in_off_mode")
    assert "reason: think_in_off_mode" in dropped.text
    # the think block is collapsed: its text is not shown until opened
    think = browser.find_element(By.CSS_SELECTOR, "#pairs details.think")
    assert think.get_attribute("open") is None and not think.find_element(By.TAG_NAME, "pre").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#training svg.chart")
    assert_script_is_text(browser)
    assert console_errors(browser) == []
    assert screenshot(browser, tmp_path / "report.png").stat().st_size > 10_000


@pytest.fixture
def viewer(report_run: Path) -> Iterator[str]:
    httpd = make_server(report_run, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://{}:{}/".format(*httpd.server_address[:2])
    httpd.shutdown()
    httpd.server_close()


def test_viewer_in_the_browser(browser: webdriver.Chrome, viewer: str, report_run: Path, tmp_path: Path):
    browser.get(viewer)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#browse-rows .row"))
    assert funnel_cells(browser) == expected_funnel(report_run)
    # a reason in the funnel opens its rows in the browser
    browser.find_element(By.CSS_SELECTOR, 'a.reason[data-stage="filter"][data-reason="no_think"]').click()
    wait.until(lambda d: d.find_element(By.ID, "page-info").text == "rows 1–1 of 1")
    rows = browser.find_elements(By.CSS_SELECTOR, "#browse-rows .row")
    assert len(rows) == 1 and "reason: no_think" in rows[0].text
    # a text search over the export's kept rows, then every sample of that prompt across the stages
    form = browser.find_element(By.ID, "browse-form")
    info = browser.find_element(By.ID, "page-info")
    Select(form.find_element(By.NAME, "stage")).select_by_value("export")
    wait.until(lambda d: info.text == "rows 0–0 of 0")  # export dropped nothing
    Select(form.find_element(By.NAME, "part")).select_by_value("kept")
    wait.until(lambda d: info.text == f"rows 1–{min(25, expected_funnel(report_run)['export']['kept'])} of 14")
    form.find_element(By.NAME, "text").send_keys("window.__pwned")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: info.text == "rows 1–2")  # a text search is not counted
    browser.find_element(By.CSS_SELECTOR, "#browse-rows .open-prompt").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#prompt-rows .row")) >= 6)
    where = {row.text.split("\n")[0] for row in browser.find_elements(By.CSS_SELECTOR, "#prompt-rows .row")}
    assert {w.split(" math")[0].split(" chat")[0] for w in where} >= {"filter · kept", "dedup · kept", "export · kept"}
    assert_script_is_text(browser)
    assert console_errors(browser) == []
    assert screenshot(browser, tmp_path / "viewer.png").stat().st_size > 10_000
