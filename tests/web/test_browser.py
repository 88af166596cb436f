"""The page in a real browser: Debian's headless chromium driven by Selenium through
chromium-driver. A failing test leaves a screenshot (its path is in the failure message)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.requires import cannot
from tests.web.weblib import Lib, Serve

TOKEN = "s3cret-token"


def _ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when missing (root with apt-get only)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                       capture_output=True, timeout=900, check=False)
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        cannot("needs Debian's chromium and chromium-driver (apt-get install chromium "
               "chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _ensure_chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        cannot("needs selenium (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options,
                              service=Service(shutil.which("chromedriver") or "chromedriver"))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def shot(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """On failure, save what the browser showed."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = Path(os.environ.get("WATCHERD_TEST_ARTIFACTS", tmp_path))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.node.name}.png"
        browser.save_screenshot(str(path))
        report.sections.append(("screenshot", str(path)))
        print(f"screenshot of the failure: {path}")


def tiles(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, ".grid a.tile")


def decoded(browser: Any, selector: str = ".grid img") -> tuple[int, int]:
    """(images decoded, images in the page) after scrolling every one into view."""
    return tuple(browser.execute_script(  # type: ignore[no-any-return]
        "const imgs = [...document.querySelectorAll(arguments[0])];"
        "imgs.forEach(i => i.scrollIntoView());"
        "return [imgs.filter(i => i.complete && i.naturalWidth > 0).length, imgs.length];",
        selector))


def all_decoded(browser: Any, selector: str = ".grid img", expect: int | None = None) -> int:
    def done() -> int:
        ok, total = decoded(browser, selector)
        return ok if ok == total and total > 0 and (expect is None or total == expect) else 0

    return int(wait_for(done, 30, f"every {selector} to decode"))


def test_search_page_through_and_click_through(library: Lib, server: Serve, browser: Any,
                                              shot: None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.base + "/")
    assert "Newest photos" in browser.find_element(By.CSS_SELECTOR, ".summary").text
    assert all_decoded(browser, expect=60) == 60
    first = tiles(browser)[0].get_attribute("href")
    assert first.endswith(f"/photo/{library.ids['scan.tif']}")  # the newest file date
    box = browser.find_element(By.ID, "q")
    box.send_keys("a red photo", Keys.ENTER)
    wait_for(lambda: "q=a+red+photo" in browser.current_url, 30, "the search page")
    assert all_decoded(browser, expect=60) == 60
    titles = [t.get_attribute("title") for t in tiles(browser)]
    assert all("score" in t for t in titles)
    scores = [float(t.rsplit("score ", 1)[1]) for t in titles]
    assert scores == sorted(scores, reverse=True)
    page1 = [t.get_attribute("href") for t in tiles(browser)]
    browser.find_element(By.ID, "next").click()
    wait_for(lambda: "page=2" in browser.current_url, 30, "page 2")
    assert all_decoded(browser, expect=60) == 60
    page2 = [t.get_attribute("href") for t in tiles(browser)]
    assert not set(page1) & set(page2)
    browser.find_element(By.ID, "prev").click()
    wait_for(lambda: "page=1" in browser.current_url, 30, "page 1 again")
    assert [t.get_attribute("href") for t in tiles(browser)] == page1

    # "More like this" on every tile: the photo's nearest, as the API ranks them by image.
    assert len(browser.find_elements(By.CSS_SELECTOR, ".grid a.like")) == 60
    seed = tiles(browser)[2].get_attribute("data-id")
    browser.find_elements(By.CSS_SELECTOR, ".grid a.like")[2].click()
    wait_for(lambda: f"like={seed}" in browser.current_url, 30, "the more-like-this page")
    assert f"photo #{seed}" in browser.find_element(By.CSS_SELECTOR, ".summary").text
    assert all_decoded(browser, expect=60) == 60
    shown = [int(t.get_attribute("data-id")) for t in tiles(browser)]
    with urllib.request.urlopen(f"{server.base}/api/search?image={seed}&n=61") as r:
        ranked = [h["image_id"] for h in json.load(r)["results"]
                  if h["image_id"] != int(seed)]
    assert shown == ranked[:60]
    browser.back()
    wait_for(lambda: "like=" not in browser.current_url, 30, "back to the text search")

    tiles(browser)[0].click()
    wait_for(lambda: "/photo/" in browser.current_url, 30, "a photo's page")
    all_decoded(browser, "#large", expect=1)
    path = browser.find_element(By.ID, "path").text
    assert path.startswith(str(library.photos))
    assert all_decoded(browser, expect=24) == 24  # its nearest photos
    nearest = tiles(browser)[0].get_attribute("href")
    tiles(browser)[0].click()
    wait_for(lambda: browser.current_url == nearest, 30, "the nearest photo's page")
    assert browser.find_element(By.ID, "path").text != path
    original = browser.find_element(By.ID, "original")
    assert original.get_attribute("href").endswith("/original/" + nearest.rsplit("/", 1)[1])

    browser.find_element(By.LINK_TEXT, "Status").click()
    wait_for(lambda: browser.current_url.endswith("/status"), 30, "the status page")
    failures = browser.find_element(By.ID, "failures").text
    assert "cannot identify image file — 3 photos" in failures
    assert "131" in browser.find_element(By.CSS_SELECTOR, ".kind-embedding").text


def test_folder_filter(library: Lib, server: Serve, browser: Any, shot: None) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.base + "/")
    field = browser.find_element(By.NAME, "under")
    field.send_keys(str(library.photos / "beach"))
    field.submit()
    wait_for(lambda: "under=" in browser.current_url, 30, "the folder filter")
    titles = [t.get_attribute("title") for t in tiles(browser)]
    assert len(titles) == 60
    ids = {t.get_attribute("data-id") for t in tiles(browser)}
    beach = {str(v) for k, v in library.ids.items()
             if k.startswith("img") and int(k[3:6]) % 2 == 1}
    assert ids <= beach


def test_log_in_with_the_token(token_library: Lib, token_server: Serve, browser: Any,
                               shot: None) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(token_server.base + "/?q=green")
    wait_for(lambda: "/login" in browser.current_url, 30, "the login page")
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "login").click()
    # the click submits a form: wait for the answer's page, not the one still showing
    error = wait_for(lambda: next(iter(browser.find_elements(By.ID, "error")), None), 30,
                     "the wrong token's error")
    assert "wrong token" in error.text
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    wait_for(lambda: "q=green" in browser.current_url and "/login" not in browser.current_url,
             30, "the search page after logging in")
    assert all_decoded(browser) >= 8  # the session cookie works for <img> too
    browser.get(token_server.base + "/status")
    assert browser.find_element(By.ID, "status").text == "Status"


def test_filters_on_the_search_form_and_the_timeline(library: Lib, server: Serve, browser: Any,
                                                     shot: None) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.weblib import meta_of

    numbers = {str(library.ids[f"img{n:03d}.jpg"]): n for n in range(130)}
    numbers[str(library.ids["scan.tif"])] = 130
    browser.get(server.base + "/")
    browser.find_element(By.CSS_SELECTOR, "#filters summary").click()
    browser.find_element(By.ID, "q").send_keys("a red photo")
    browser.find_element(By.ID, "place").send_keys("munchen")
    browser.find_element(By.ID, "camera").send_keys("NIKON")
    browser.find_element(By.ID, "q").submit()
    wait_for(lambda: "place=munchen" in browser.current_url, 30, "the filtered search")
    shown = [t.get_attribute("data-id") for t in tiles(browser)]
    assert shown and all(meta_of(numbers[i]).get("place") == "München"
                         and meta_of(numbers[i])["camera_make"].startswith("NIKON")
                         for i in shown)
    assert browser.find_element(By.ID, "place").get_attribute("value") == "munchen"
    assert "place munchen" in browser.find_element(By.ID, "filtered").text
    like = browser.find_elements(By.CSS_SELECTOR, ".grid a.like")[0].get_attribute("href")
    assert "place=munchen" in like and "camera=NIKON" in like  # kept in the links

    browser.find_element(By.LINK_TEXT, "Timeline").click()
    wait_for(lambda: browser.current_url.endswith("/timeline"), 30, "the timeline")
    months = browser.find_elements(By.CSS_SELECTOR, "a.month")
    assert [m.text for m in months] == sorted((m.text for m in months), reverse=True)
    month = next(m for m in months if m.text == "2018-06")
    count = int(month.find_element(By.XPATH, "following-sibling::span").text)
    month.click()
    wait_for(lambda: "taken=2018-06" in browser.current_url, 30, "the month's photos")
    shown = [t.get_attribute("data-id") for t in tiles(browser)]
    assert len(shown) == count > 0
    taken = [meta_of(numbers[i])["taken_at"] for i in shown]
    assert all(t.startswith("2018-06") for t in taken) and taken == sorted(taken, reverse=True)
    assert "newest taken first" in browser.find_element(By.CSS_SELECTOR, ".summary").text

    tiles(browser)[0].click()
    wait_for(lambda: "/photo/" in browser.current_url, 30, "a photo's page")
    osm = browser.find_element(By.ID, "osm").get_attribute("href")
    assert osm.startswith("https://www.openstreetmap.org/?mlat=") and "#map=15/" in osm
    assert browser.find_element(By.ID, "taken-at").text.startswith("2018-06")
    assert not browser.find_elements(By.CSS_SELECTOR, "iframe, .leaflet-container")
